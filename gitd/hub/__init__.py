"""The Hugging Face-compatible Hub API (at the server root) and the native REST API (/api/v1).

``add_hub_routes`` builds the handlers from the daemon's Services and registers them;
``gitd/http/app.py`` calls it before the git and LFS routes.
"""

from __future__ import annotations

from gitd.http.offload import Offload
from gitd.http.routing import Router
from gitd.hub.commits import CommitWriter
from gitd.hub.discussions import PullRequests
from gitd.hub.files import FileView, HubFiles
from gitd.hub.gitread import RepoReader
from gitd.hub.history import HubHistory
from gitd.hub.info import HubInfo
from gitd.hub.lfscontent import LfsContent, NoLfsContent
from gitd.hub.manage import HubManage
from gitd.hub.native import NativeAPI
from gitd.hub.upload import HubUploads
from gitd.services import Services
from gitd.store.discussions import Discussions
from gitd.store.redirects import Redirects


def add_hub_routes(router: Router, services: Services, lfs: LfsContent | None = None) -> None:
    cfg = services.config
    public_url = cfg.get_str("server.public_url")
    email_domain = cfg.get_str("hub.commit_email_domain")
    reader = RepoReader(services.ref_changes, cache_entries=cfg.get_int("hub.resolve_cache_entries"))
    # Without an LFS store no object is held and pointers are served as the files they are.
    content = lfs if lfs is not None else NoLfsContent()
    view = FileView(content)
    writer = CommitWriter(services.chain, reader, email_domain=email_domain, git=services.git)
    offload = Offload(workers=cfg.get_int("server.offload_threads"), limit=cfg.get_float("server.offload_timeout"))
    common = {"public_url": public_url, "redirects": Redirects(services.store), "offload": offload}
    prs = PullRequests(services.repos, services.access, Discussions(services.store), reader, services.chain,
                       **common)
    max_card_size = cfg.get_size("hub.max_card_size")
    files = HubFiles(services.repos, services.access, reader, view, max_paths=cfg.get_int("hub.max_paths_info"),
                     **common)
    files.add_resolve_route(router)
    # /api/v1/... first: the Hub's /api/{types}/{ns}/{name} patterns would match it too.
    NativeAPI(services, reader, writer, view, **common).add_routes(router)
    HubManage(services.repos, services.access, services.accounts, max_card_size=max_card_size,
              **common).add_routes(router)
    HubInfo(services.repos, services.access, services.repo_rows, reader, view, max_card_size=max_card_size,
            max_listed_files=cfg.get_int("hub.max_listed_files"),
            listing_cache_entries=cfg.get_int("hub.listing_cache_entries"), **common).add_routes(router)
    files.add_routes(router)
    HubHistory(services.repos, services.access, reader, services.chain, email_domain=email_domain,
               **common).add_routes(router)
    HubUploads(services.repos, services.access, reader, writer, prs, content,
               regular_upload_max=cfg.get_size("hub.regular_upload_max"),
               max_inline_file=cfg.get_size("hub.max_inline_file"), lfs_uploads=lfs is not None,
               max_commit_size=cfg.get_size("hub.max_commit_size"), inline_decodes=cfg.get_int("hub.inline_decodes"),
               max_paths=cfg.get_int("hub.max_paths_info"), **common).add_routes(router)
    prs.add_routes(router)
