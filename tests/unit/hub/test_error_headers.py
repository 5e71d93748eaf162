"""Hub-style error responses: the message goes into a header, so it must be one clean line."""

import json

from gitd.errors import Forbidden
from gitd.http.errors import error_response


def test_regression_multiline_error_message_fits_in_a_header():
    # A pre-receive refusal spans several lines; as a raw header value it made aiohttp
    # drop the connection instead of answering.
    exc = Forbidden("push refused: 1 file(s) exceed the limit:\r\n  big.bin (4.0 KiB)\nTo fix this: \u00e9", code="X")
    response = error_response(exc, "hub")
    assert response.headers["X-Error-Message"] == (
        "push refused: 1 file(s) exceed the limit: big.bin (4.0 KiB) To fix this: ?")
    assert response.headers["X-Error-Code"] == "X"
    assert json.loads(response.text)["error"] == exc.message  # the body keeps the full text
