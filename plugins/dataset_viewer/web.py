"""The dataset viewer's tab on a dataset's web pages (``gitd_web_tabs``, plugin API 1.2).

``/datasets/NS/NAME/tab/datasets/viewer``: a split's rows as a table, a page at a time
(the first page is the precomputed first rows), a search box, a filter (the ``/filter``
route's ``where``/``orderby`` grammar) and the split's column statistics
(``?view=statistics``). Everything is drawn on the server from the same answers the
viewer API gives (and caches), so the access rules are the API's: the daemon has checked
that the caller may read the dataset before the handler runs. Plain links and GET forms,
no JavaScript.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from gitd.plugin_api import PluginRequest, RepoInfo, WebRequest, WebTab, html_escape

from .state import SplitState

if TYPE_CHECKING:
    from . import DatasetViewer
    from .api import ViewerAPI

CELL_CHARS = 300  # longer cells are cut in the table (the API's rows carry more)
NUMBER_KEYS = (("nan_count", "nulls"), ("min", "min"), ("max", "max"), ("mean", "mean"), ("median", "median"),
               ("std", "std"))


def tabs(repo: RepoInfo, handler: Callable[[WebRequest], str]) -> list[WebTab] | None:
    return [WebTab("viewer", "Dataset viewer", handler, order=40)] if repo.type == "dataset" else None


class ViewerTab:
    def __init__(self, plugin: DatasetViewer, api: ViewerAPI):
        self.p = plugin
        self.api = api

    def _ask(self, request: WebRequest, route: Callable[[PluginRequest], Any], **query: Any
             ) -> tuple[int, Any]:
        """One viewer API answer for this dataset, as the API would give it (and cache it)."""
        repo = request.repo
        params = {"dataset": repo.full_name, **{k: str(v) for k, v in query.items() if v is not None}}
        preq = PluginRequest(method="GET", path="", query=params, headers={}, params={}, user=request.user,
                             find_repo=lambda _name, _type, _access: repo)
        answer = route(preq)
        status = getattr(answer, "status", 200)
        body = answer.encoded() if hasattr(answer, "encoded") else answer
        return status, json.loads(body) if isinstance(body, bytes | str) else body

    def page(self, request: WebRequest) -> str:
        state = self.p.states.current(request.repo.id)
        if state is None:
            return ('<p class="muted">The dataset viewer has not processed this dataset yet (a push starts it; '
                    "<code>gitd jobs list</code> shows how far it is). Reload this page in a moment.</p>")
        if state.error is not None:
            return f'<p class="notice bad">The dataset cannot be read: {html_escape(state.error)}</p>'
        q = request.query
        ok = [s for s in state.splits if s.ok]
        chosen = state.split(q.get("config", ""), q.get("split", "")) or (ok[0] if ok else None)
        out = [self._splits(request, state.splits, chosen)]
        if chosen is None:
            out.append('<p class="muted">No split of this dataset could be read.</p>')
        elif chosen.error is not None:
            out.append(f'<p class="notice bad">The split {html_escape(chosen.config)}/{html_escape(chosen.split)} '
                       f"cannot be read: {html_escape(chosen.error)}</p>")
        elif q.get("view") == "statistics":
            out.append(self._statistics(request, chosen))
        else:
            out.append(self._rows(request, chosen))
        return "".join(out)

    # -- parts ---------------------------------------------------------------------------------
    @staticmethod
    def _link(request: WebRequest, **params: Any) -> str:
        kept = {k: v for k, v in params.items() if v not in (None, "", 0)}
        return html_escape(request.url + ("?" + urlencode(kept) if kept else ""))

    def _splits(self, request: WebRequest, splits: list[SplitState], chosen: SplitState | None) -> str:
        items = []
        for s in splits:
            label = f"{s.config}/{s.split}"
            if not s.ok:
                items.append(f'<li><span class="muted">{html_escape(label)} (error)</span></li>')
            elif chosen is not None and (s.config, s.split) == (chosen.config, chosen.split):
                items.append(f'<li><strong aria-current="true">{html_escape(label)}</strong> '
                             f'<span class="muted">{s.num_rows:,} rows</span></li>')
            else:
                items.append(f'<li><a href="{self._link(request, config=s.config, split=s.split)}">'
                             f'{html_escape(label)}</a> <span class="muted">{s.num_rows:,} rows</span></li>')
        return f'<nav aria-label="Splits"><ul class="splits">{"".join(items)}</ul></nav>'

    def _forms(self, request: WebRequest, s: SplitState, query: str, where: str, orderby: str) -> str:
        hidden = (f'<input type="hidden" name="config" value="{html_escape(s.config)}">'
                  f'<input type="hidden" name="split" value="{html_escape(s.split)}">')
        url = html_escape(request.url)
        stats = self._link(request, config=s.config, split=s.split, view="statistics")
        return (f'<form method="get" action="{url}" role="search" class="inline">{hidden}'
                f'<label>Search <input type="search" name="q" value="{html_escape(query)}"></label> '
                f'<button type="submit">Search</button></form>'
                f'<form method="get" action="{url}" class="inline">{hidden}'
                f'<label>Filter <input type="text" name="where" value="{html_escape(where)}" '
                f'placeholder="label = 1 AND text LIKE \'%odd%\'"></label> '
                f'<label>Order by <input type="text" name="orderby" value="{html_escape(orderby)}" '
                f'placeholder="id DESC"></label> <button type="submit">Filter</button></form>'
                f'<p><a href="{stats}">Column statistics</a></p>')

    def _rows(self, request: WebRequest, s: SplitState) -> str:
        q = request.query
        query, where, orderby = q.get("q", "").strip(), q.get("where", "").strip(), q.get("orderby", "").strip()
        try:
            offset = max(0, int(q.get("offset", "0")))
        except ValueError:
            offset = 0
        length = self.p.settings.max_page_rows
        common = {"config": s.config, "split": s.split}
        if query:
            status, body = self._ask(request, self.api.search, **common, query=query, offset=offset, length=length)
        elif where or orderby:
            status, body = self._ask(request, self.api.filter, **common, where=where, orderby=orderby,
                                     offset=offset, length=length)
        elif offset == 0:
            status, body = self._ask(request, self.api.first_rows, **common)
            if status == 200:
                body["num_rows_total"] = s.num_rows
        else:
            status, body = self._ask(request, self.api.rows, **common, offset=offset, length=length)
        out = [self._forms(request, s, query, where, orderby)]
        if status != 200:
            out.append(f'<p class="notice bad" role="alert">{html_escape(body.get("error", "the viewer failed"))}</p>')
            return "".join(out)
        rows, total = body.get("rows", []), int(body.get("num_rows_total", 0))
        names = [f["name"] for f in body.get("features", [])]
        what = "matching rows" if query or where else "rows"
        shown = f"{offset + 1:,}&ndash;{offset + len(rows):,}" if rows else "none"
        out.append(f'<p class="muted">{total:,} {what}; showing {shown}'
                   + (" (the viewer read part of this split)" if s.partial else "") + "</p>")
        head = "".join(f'<th scope="col">{html_escape(n)}</th>' for n in names)
        body_rows = "".join(
            f'<tr><th scope="row">{int(r.get("row_idx", 0))}</th>'
            + "".join(f"<td>{_cell(r.get('row', {}).get(n))}</td>" for n in names) + "</tr>" for r in rows)
        out.append(f'<div class="table-wrap"><table class="list"><thead><tr><th scope="col">#</th>{head}</tr>'
                   f"</thead><tbody>{body_rows}</tbody></table></div>")
        links = []
        keep = {**common, "q": query, "where": where, "orderby": orderby}
        if offset > 0:
            links.append(f'<a href="{self._link(request, **keep, offset=max(0, offset - length))}" rel="prev">'
                         "Previous</a>")
        if offset + len(rows) < total:
            links.append(f'<a href="{self._link(request, **keep, offset=offset + length)}" rel="next">Next</a>')
        if links:
            out.append(f'<nav aria-label="Pages" class="pager">{" ".join(links)}</nav>')
        return "".join(out)

    def _statistics(self, request: WebRequest, s: SplitState) -> str:
        back = self._link(request, config=s.config, split=s.split)
        out = [f'<p><a href="{back}">Back to the rows</a></p>']
        status, body = self._ask(request, self.api.statistics, config=s.config, split=s.split)
        if status != 200:
            out.append(f'<p class="notice bad" role="alert">{html_escape(body.get("error", "no statistics"))}</p>')
            return "".join(out)
        out.append(f'<p class="muted">{int(body.get("num_examples", 0)):,} rows</p>')
        for column in body.get("statistics", []):
            out.append(_column(column))
        return "".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return '<span class="muted">null</span>'
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > CELL_CHARS:
        return html_escape(text[:CELL_CHARS]) + '<span class="muted">…</span>'
    return html_escape(text)


def _column(column: Mapping[str, Any]) -> str:
    name, kind = str(column.get("column_name")), str(column.get("column_type"))
    stats: Mapping[str, Any] = column.get("column_statistics") or {}
    facts = [f"<dt>{label}</dt><dd>{html_escape(stats[key])}</dd>" for key, label in NUMBER_KEYS
             if stats.get(key) is not None or key == "nan_count"]
    if "n_unique" in stats:
        facts.append(f"<dt>distinct</dt><dd>{html_escape(stats['n_unique'])}</dd>")
    what = {"string_text": " (lengths)", "list": " (lengths)"}.get(kind, "")
    out = [f'<section class="column-stats"><h3>{html_escape(name)} <span class="badge">{html_escape(kind)}'
           f"</span></h3><dl>{''.join(facts)}</dl>"]
    hist = stats.get("histogram")
    if isinstance(hist, dict) and hist.get("hist"):
        counts, edges = hist["hist"], hist.get("bin_edges", [])
        top = max(counts) or 1
        rows = "".join(
            f"<tr><th scope=\"row\">{html_escape(edges[i] if i < len(edges) else '')}&ndash;"
            f"{html_escape(edges[i + 1] if i + 1 < len(edges) else '')}</th>"
            f'<td><meter min="0" max="{top}" value="{int(n)}"></meter> {int(n):,}</td></tr>'
            for i, n in enumerate(counts))
        out.append(f"<table class=\"list histogram\"><caption>Histogram{what}</caption>{rows}</table>")
    freqs = stats.get("frequencies")
    if isinstance(freqs, dict) and freqs:
        top = max(freqs.values()) or 1
        rows = "".join(f'<tr><th scope="row">{html_escape(k)}</th><td><meter min="0" max="{top}" '
                       f'value="{int(v)}"></meter> {int(v):,}</td></tr>' for k, v in freqs.items())
        out.append(f"<table class=\"list histogram\"><caption>Frequencies</caption>{rows}</table>")
    out.append("</section>")
    return "".join(out)
