import pytest

from gitd.http.accesslog import redact


@pytest.mark.parametrize(("raw", "logged"), [
    ("/o/r.git/info/lfs/objects/abc?token=gitds.SECRET.SIG", "/o/r.git/info/lfs/objects/abc?token=REDACTED"),
    ("/x?a=1&TOKEN=s&b=2", "/x?a=1&TOKEN=REDACTED&b=2"),
    ("/x?X-Amz-Signature=s&X-Amz-Credential=c&keep=1", "/x?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&keep=1"),
    ("/x?tokens=1", "/x?tokens=1"),
    ("/no/query", "/no/query"),
])
def test_regression_signed_link_credentials_are_not_logged(raw, logged):
    """Signed LFS links (token=...) were written to the access log as they came."""
    assert redact(raw) == logged
