#!/usr/bin/env python3
"""troupe's reference environment server: environments in Python, served to troupe over
ZeroMQ + msgpack (the protocol is docs/env-protocol.md).

    /usr/bin/python3 examples/python_env/server.py                 # tcp://127.0.0.1:5555
    /usr/bin/python3 examples/python_env/server.py --port 0        # a free port, printed

It offers two environments:
  arithmetic  single-turn: the task's prompt ("12+34="), judged against
              task.metadata.answer exactly as troupe's built-in `arithmetic` judges it
              (rewards `correct` and `format`).
  guess       multi-turn: guess a number in 1..100 (task.metadata.secret, or one derived
              from the task id) with "higher"/"lower" hints, in at most
              task.metadata.max_turns (7) turns (rewards `solved` and `format` at the end).

The first line on stdout is "listening on ENDPOINT" once the socket is bound.
The --crash-*, --hang-*, --malformed-* and --*protocol flags make it misbehave on
purpose, for troupe's fault tests. Needs only pyzmq and msgpack (Debian: python3-zmq,
python3-msgpack).
"""
import argparse
import collections
import hashlib
import os
import re
import sys

import msgpack
import zmq
import zmq.auth

PROTOCOL = 1
MAX_FRAME = 16 << 20      # larger frames are refused by the socket (ZMQ_MAXMSGSIZE)
MAX_EPISODES = 10000      # open episodes kept; the oldest is forgotten beyond this


class EnvError(Exception):
    """A request the environment cannot serve: becomes an `error` reply."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def parse_int(action):
    """The integer the action is, if it is exactly one (less trailing newlines/spaces)."""
    a = action.rstrip("\n ")
    return int(a) if re.fullmatch(r"-?[0-9]+", a) and -2**63 <= int(a) < 2**63 else None


class Arithmetic:
    """Single-turn: one answer per problem, judged like troupe's `arithmetic`."""
    summary = "integer problems from the task's prompt, judged against metadata.answer"

    def reset(self, task):
        if "answer" not in task["metadata"]:
            raise EnvError("bad_task", f"arithmetic task '{task['id']}': metadata has no 'answer'")
        self.answer = task["metadata"]["answer"]
        return task["prompt"], ["\n"]

    def step(self, action):
        v = parse_int(action)
        rewards = {"format": 1.0 if v is not None else 0.0,
                   "correct": 1.0 if v is not None and str(v) == self.answer else 0.0}
        info = {"expected": self.answer, "parsed": "" if v is None else str(v)}
        return "", ["\n"], rewards, True, info


class Guess:
    """Multi-turn: find a secret number with higher/lower hints."""
    summary = "guess a number in 1..100 with higher/lower hints (multi-turn)"

    def reset(self, task):
        md = task["metadata"]
        try:
            digest = hashlib.sha256(task["id"].encode()).digest()
            self.secret = int(md["secret"]) if "secret" in md else 1 + int.from_bytes(digest[:4], "little") % 100
            self.turns_left = int(md.get("max_turns", "7"))
        except ValueError as e:
            raise EnvError("bad_task", f"guess task '{task['id']}': {e}")
        self.turns = 0
        prompt = task["prompt"] or "Guess a number between 1 and 100.\n"
        return prompt, ["\n"]

    def step(self, action):
        v = parse_int(action)
        self.turns += 1
        self.turns_left -= 1
        if v == self.secret or self.turns_left <= 0:
            solved = 1.0 if v == self.secret else 0.0
            rewards = {"solved": solved, "format": 1.0 if v is not None else 0.0}
            return "", [], rewards, True, {"secret": str(self.secret), "turns": str(self.turns)}
        hint = "not a number" if v is None else ("higher" if v < self.secret else "lower")
        return hint + "\n", ["\n"], {}, False, {"hint": hint}


ENVIRONMENTS = {"arithmetic": Arithmetic, "guess": Guess}


def is_str_map(m):
    return isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in m.items())


class Server:
    def __init__(self, args):
        self.args = args
        self.welcomed = set()                           # routing ids that said hello
        self.episodes = collections.OrderedDict()       # (routing id, episode) -> env instance
        self.counter = 0
        self.steps_answered = 0
        self.steps_seen = 0

    # --- the protocol -------------------------------------------------------------

    def handle(self, peer, msg):
        """The reply to one decoded request (a dict), or None for no reply."""
        t, rid = msg["type"], msg["id"]
        if t == "hello":
            if msg.get("protocol") != self.args.protocol:
                return error(rid, "protocol_version",
                             f"this server speaks protocol {self.args.protocol}, the client {msg.get('protocol')!r}")
            self.welcomed.add(peer)
            envs = [{"name": n, "summary": c.summary} for n, c in ENVIRONMENTS.items()]
            return {"type": "welcome", "id": rid, "protocol": self.args.welcome_protocol or self.args.protocol,
                    "environments": envs}
        if t == "ping":
            return {"type": "pong", "id": rid}
        if peer not in self.welcomed:
            return error(rid, "handshake_required", "send hello first")
        if t == "reset":
            return self.reset(peer, rid, msg)
        if t == "step":
            return self.step(peer, rid, msg)
        if t == "close":
            if isinstance(msg.get("episode"), str):
                self.episodes.pop((peer, msg["episode"]), None)
            return None
        return error(rid, "unknown_type", f"unknown request type {t!r}")

    def reset(self, peer, rid, msg):
        task = msg.get("task")
        if not isinstance(msg.get("env"), str) or not isinstance(task, dict) or not isinstance(task.get("id"), str) \
                or not isinstance(task.get("prompt"), str) or not is_str_map(task.get("metadata", {})):
            return error(rid, "bad_request", "reset needs env (string) and task {id, prompt, metadata: {str: str}}")
        if msg["env"] not in ENVIRONMENTS:
            return error(rid, "unknown_env", f"no environment {msg['env']!r} (have: {', '.join(ENVIRONMENTS)})")
        task.setdefault("metadata", {})
        env = ENVIRONMENTS[msg["env"]]()
        text, stops = env.reset(task)
        self.counter += 1
        episode = f"{os.getpid():x}-{self.counter}"
        self.episodes[(peer, episode)] = env
        while len(self.episodes) > MAX_EPISODES:
            self.episodes.popitem(last=False)
        return {"type": "observation", "id": rid, "episode": episode, "text": text, "stop_strings": stops}

    def step(self, peer, rid, msg):
        self.steps_seen += 1
        a = self.args
        if a.crash_after_steps is not None and self.steps_answered >= a.crash_after_steps:
            print(f"crashing on purpose at step request {self.steps_seen}", file=sys.stderr, flush=True)
            os._exit(3)
        if self.steps_seen <= a.hang_steps:
            return None  # never answered
        key = (peer, msg.get("episode"))
        if not isinstance(msg.get("action"), str) or key not in self.episodes:
            return error(rid, "unknown_episode", f"no open episode {msg.get('episode')!r} on this connection")
        text, stops, rewards, done, info = self.episodes[key].step(msg["action"])
        if done:
            del self.episodes[key]
        self.steps_answered += 1
        return {"type": "step_result", "id": rid, "observation": text, "stop_strings": stops,
                "rewards": rewards, "done": done, "info": info}

    def malformed(self, reply):
        """The bytes of a broken step reply, for --malformed-steps."""
        kind = self.args.malformed_kind
        if kind == "bytes":
            return [b"\xc1\x93 not msgpack"]          # 0xc1 is never used in msgpack
        if kind == "types":
            reply = dict(reply, rewards={"correct": "yes"}, done="no")
        elif kind == "missing":
            reply = {"type": "step_result", "id": reply["id"]}
        elif kind == "frames":
            return [b"", msgpack.packb(reply)]
        elif kind == "huge":  # over any sane max_message_bytes: the client must refuse it unread
            reply = dict(reply, padding=b"\0" * (32 << 20))
        return [msgpack.packb(reply)]

    # --- the loop -----------------------------------------------------------------

    def serve(self, sock):
        while True:
            frames = sock.recv_multipart()
            if len(frames) != 2:
                sock.send_multipart([frames[0], msgpack.packb(error(0, "bad_request", "expected one frame"))])
                continue
            peer, payload = frames
            try:
                msg = msgpack.unpackb(payload, raw=False)  # the socket bounds the frame (MAXMSGSIZE)
                if not isinstance(msg, dict) or not isinstance(msg.get("type"), str) \
                        or not isinstance(msg.get("id"), int) or msg["id"] < 0:
                    raise ValueError("not a map with type (string) and id (integer)")
            except Exception as e:
                sock.send_multipart([peer, msgpack.packb(error(0, "bad_request", f"malformed request: {e}"))])
                continue
            try:
                reply = self.handle(peer, msg)
            except EnvError as e:
                reply = error(msg["id"], e.code, str(e))
            except Exception as e:  # a bug in an environment fails its request, not the server
                reply = error(msg["id"], "internal", f"{type(e).__name__}: {e}")
            if reply is None:
                continue
            out = [msgpack.packb(reply)]
            if msg["type"] == "step" and self.steps_seen <= self.args.hang_steps + self.args.malformed_steps \
                    and self.steps_seen > self.args.hang_steps:
                out = self.malformed(reply)
            sock.send_multipart([peer] + out)


def error(rid, code, message):
    return {"type": "error", "id": rid, "code": code, "message": message}


def loopback_endpoint(endpoint):
    """Whether a tcp:// endpoint's host resolves to loopback addresses only (ipc:// and
    inproc:// never leave the machine); '*' and unresolvable names are not loopback."""
    import ipaddress
    import socket
    if not endpoint.startswith("tcp://"):
        return endpoint.startswith(("ipc://", "inproc://"))
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    if host == "*":
        return False
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    addrs = [ipaddress.ip_address(i[4][0].split("%")[0]) for i in infos]
    return bool(addrs) and all(a.is_loopback or (a.version == 6 and a.ipv4_mapped is not None
                                                  and a.ipv4_mapped.is_loopback) for a in addrs)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", default=None, help="ZeroMQ endpoint to bind (default tcp://127.0.0.1:5555)")
    p.add_argument("--port", type=int, default=None, help="bind tcp://127.0.0.1:PORT; 0 picks a free port")
    p.add_argument("--curve-secret-key-file", help="serve with CURVE: this server's certificate (public + secret), "
                   "as --make-curve-keys writes it")
    p.add_argument("--make-curve-keys", metavar="DIR", help="write server and client certificates to DIR and exit")
    p.add_argument("--curve-allow", metavar="DIR",
                   help="with CURVE: admit only clients whose public key is in DIR (the *.key certificates "
                        "--make-curve-keys writes), checked through ZAP; required off loopback")
    faults = p.add_argument_group("faults, for tests")
    faults.add_argument("--crash-after-steps", type=int, default=None, help="answer N steps, then exit on the next")
    faults.add_argument("--hang-steps", type=int, default=0, help="never answer the first N step requests")
    faults.add_argument("--malformed-steps", type=int, default=0, help="answer the next N step requests wrongly")
    faults.add_argument("--malformed-kind", choices=["bytes", "types", "missing", "frames", "huge"], default="bytes")
    faults.add_argument("--protocol", type=int, default=PROTOCOL, help="the protocol version spoken (refuses others)")
    faults.add_argument("--welcome-protocol", type=int, default=0, help="claim this version in welcome regardless")
    args = p.parse_args()

    if args.make_curve_keys:
        os.makedirs(args.make_curve_keys, exist_ok=True)
        for name in ("server", "client"):
            zmq.auth.create_certificates(args.make_curve_keys, name)
        print(f"wrote server.key, server.key_secret, client.key, client.key_secret to {args.make_curve_keys}")
        return
    if args.endpoint and args.port is not None:
        p.error("give --endpoint or --port, not both")
    endpoint = args.endpoint or f"tcp://127.0.0.1:{5555 if args.port is None else args.port}"

    # Plain text and unknown clients stay on this machine: off loopback the server needs
    # CURVE and a client allowlist (anyone may know the server's public key).
    remote = not loopback_endpoint(endpoint)
    if remote and not args.curve_secret_key_file:
        p.error(f"{endpoint} is not a loopback address: serve it with CURVE (--curve-secret-key-file) and "
                "--curve-allow DIR, or bind 127.0.0.1")
    if remote and not args.curve_allow:
        p.error(f"{endpoint} is not a loopback address: name the clients it admits with --curve-allow DIR")
    if args.curve_allow and not args.curve_secret_key_file:
        p.error("--curve-allow needs CURVE: give --curve-secret-key-file too")
    if args.curve_allow and not os.path.isdir(args.curve_allow):
        p.error(f"--curve-allow: {args.curve_allow} is not a directory")

    ctx = zmq.Context.instance()
    if args.curve_allow:
        # ZAP: the context's authenticator answers every CURVE handshake; only the keys in
        # the folder pass. The thread lives as long as the server.
        from zmq.auth.thread import ThreadAuthenticator
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve(domain="*", location=args.curve_allow)
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
    if args.curve_secret_key_file:
        public, secret = zmq.auth.load_certificate(args.curve_secret_key_file)
        if secret is None:
            p.error(f"{args.curve_secret_key_file} holds no secret key (use the .key_secret file)")
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True
    if endpoint.endswith(":0"):
        endpoint = endpoint[:-2] + ":*"
    sock.bind(endpoint)
    print(f"listening on {sock.getsockopt_string(zmq.LAST_ENDPOINT)}", flush=True)
    try:
        Server(args).serve(sock)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
