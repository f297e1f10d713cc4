"""The receive hooks' whole body: hand the ref updates to the hub process that runs this push
(spaces/repos/git_http.py listens on DEMOHUB_HOOK_SOCKET for the length of the request) and
relay its answer: the lines reach the pusher as `remote:`, the exit status accepts or refuses.
Plain Python, no Django: the checks run in the hub, which has its code, settings and database
connection loaded already."""
import json
import os
import socket
import sys

QUARANTINE = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH")


def main() -> int:
    request = {"hook": sys.argv[1], "key": os.environ.get("DEMOHUB_HOOK_KEY", ""),
               "updates": sys.stdin.read(), "env": {k: os.environ.get(k, "") for k in QUARANTINE}}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(float(os.environ.get("DEMOHUB_HOOK_TIMEOUT", "600")))
            sock.connect(os.environ["DEMOHUB_HOOK_SOCKET"])
            sock.sendall(json.dumps(request).encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        answer = json.loads(data)
    except (OSError, KeyError, ValueError) as exc:
        print(f"Demohub could not check this push ({type(exc).__name__}); nothing was changed. Try again.",
              file=sys.stderr)
        return 1
    for line in answer.get("lines", []):
        print(line, file=sys.stderr)
    return int(answer.get("code", 1))


if __name__ == "__main__":
    sys.exit(main())
