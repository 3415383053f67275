"""One real OpenEnv /ws round trip against a running environment image.

usage: ws_roundtrip.py ws://127.0.0.1:PORT/ws IMAGE_NAME

reset must answer an observation frame. For echo-env, a call_tool step of
echo_message("hi") must answer an observation that carries "hi"; the other
environments' actions differ, so they get a state request instead.
"""

import json
import sys

from websockets.sync.client import connect


def roundtrip(ws, frame):
    ws.send(json.dumps(frame))
    reply = json.loads(ws.recv(timeout=30))
    print(f"-> {json.dumps(frame)}\n<- {json.dumps(reply)[:400]}")
    return reply


def main():
    url, image = sys.argv[1], sys.argv[2]
    with connect(url, open_timeout=10) as ws:
        reply = roundtrip(ws, {"type": "reset", "data": {}})
        assert reply.get("type") == "observation", f"reset: {reply}"
        if image == "echo-env":
            step = {
                "type": "step",
                "data": {
                    "type": "call_tool",
                    "tool_name": "echo_message",
                    "arguments": {"message": "hi"},
                },
            }
            reply = roundtrip(ws, step)
            assert reply.get("type") == "observation", f"step: {reply}"
            assert "hi" in json.dumps(reply.get("data")), f"step: no echo in {reply}"
        else:
            reply = roundtrip(ws, {"type": "state"})
            assert reply.get("type") == "state", f"state: {reply}"
        ws.send(json.dumps({"type": "close"}))
    print(f"{image}: /ws round trip OK")


if __name__ == "__main__":
    main()
