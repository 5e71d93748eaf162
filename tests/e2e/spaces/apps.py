"""The space apps the end-to-end tests push: real Gradio and Streamlit apps, and small
plain-Python servers (declared as gradio spaces: the runner starts ``python app.py``) for
the faults, which start in a fraction of Gradio's time."""

CARD = "---\ntitle: test\nsdk: {sdk}\n{extra}---\n# a space\n"


def card(sdk: str, **extra: object) -> str:
    return CARD.format(sdk=sdk, extra="".join(f"{k}: {v}\n" for k, v in extra.items()))


# Gradio, mounted on FastAPI beside a WebSocket echo (the proxy carries both) and a plain
# JSON route (the proxy benchmark's request to a real app server).
GRADIO_APP = '''
import os
import gradio as gr
import uvicorn
from fastapi import FastAPI, WebSocket

app = FastAPI()


@app.get("/ping")
def ping():
    return {"pid": os.getpid()}


@app.websocket("/ws")
async def echo(ws: WebSocket):
    await ws.accept()
    while True:
        await ws.send_text("echo:" + await ws.receive_text())


demo = gr.Interface(lambda name: f"Hello {name}!", "text", "text")
app = gr.mount_gradio_app(app, demo, path="/", root_path=os.environ["GRADIO_ROOT_PATH"])
uvicorn.run(app, host="127.0.0.1", port=int(os.environ["GRADIO_SERVER_PORT"]), log_level="warning")
'''

STREAMLIT_APP = '''
import streamlit as st
st.title("streamlit space")
st.write("hello from streamlit")
'''

# A plain HTTP server: /headers echoes the request headers, /crash exits with status 3,
# /pid answers the process id, /env its environment. CRASH_ON_START makes it exit at once; FLOOD prints 5 MB first.
PLAIN_APP = '''
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = {mode!r}
if MODE == "crash-on-start":
    print("cannot start: missing MODEL_PATH", flush=True)
    sys.exit(2)
if MODE == "flood":
    line = "x" * 1023 + "\\n"
    for _ in range(5 * 1024):
        sys.stdout.write(line)
    sys.stdout.flush()


class H(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            os._exit(3)
        found = {{"/headers": lambda: dict(self.headers), "/env": lambda: dict(os.environ)}}.get(self.path)
        body = json.dumps(found() if found else {{"pid": os.getpid()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
'''


def plain_app(mode: str = "") -> str:
    return PLAIN_APP.format(mode=mode)


# An HTTP/1.1 app with keep-alive, for the daemon's relay lane: /conn answers the port of
# the connection it came on (the lane keeps connections to the app), /headers the request
# headers, /chunked a chunked answer, /eof one that ends when the app closes, /drop closes
# without answering; POST /echo answers its body (plain or chunked).
RELAY_APP = '''
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, body, status=200, kind="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/conn"):
            return self.answer(json.dumps({"port": self.client_address[1], "path": self.path}).encode())
        if self.path == "/headers":
            return self.answer(json.dumps(dict(self.headers)).encode())
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"alpha-", b"beta-", b"gamma"):
                self.wfile.write(b"%x\\r\\n%s\\r\\n" % (len(piece), piece))
            self.wfile.write(b"0\\r\\n\\r\\n")
            return
        if self.path == "/eof":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until-the-end")
            return
        if self.path == "/drop":
            self.close_connection = True
            return
        self.answer(b"{}", 404)

    do_HEAD = do_GET

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                body += self.rfile.read(size)
                self.rfile.readline()
                if not size:
                    break
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(body, kind="application/octet-stream")

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
'''
