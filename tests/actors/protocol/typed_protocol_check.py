#!/usr/bin/env python3
"""The typed actor interfaces (actors/protocol/) turn a wrong message into a compile
error. Builds the probe targets of tests/CMakeLists.txt in BUILD_DIR: the well-typed
probe must compile, and each ill-typed one must fail with the error it is about (not
for some other reason, such as a missing include)."""
import os
import subprocess
import sys

PROBES = [
    # target, must compile, texts the compiler's output must hold
    ("typed_protocol_probe_ok", True, ()),
    # CAF 0.17's request() finds no response type for the message in the interface, so
    # it drops out of overload resolution.
    ("typed_protocol_probe_wrong_message", False,
     ("no matching function for call to", "blocking_actor::request(const troupe::reward_actor&", "caf::response_type<")),
    # The reply handler's argument is checked against the interface's reply type.
    ("typed_protocol_probe_wrong_reply", False, ("wrong functor signature",)),
]


def build(build_dir, target):
    # LC_ALL=C: the compiler's messages in English, as matched below.
    env = dict(os.environ, LC_ALL="C")
    p = subprocess.run(["cmake", "--build", build_dir, "--target", target], capture_output=True, text=True, env=env)
    return p.returncode, p.stdout + p.stderr


def main():
    build_dir = sys.argv[1]
    which = sys.argv[2] if len(sys.argv) > 2 else None
    failed = False
    for target, ok, texts in PROBES:
        if which and target != which:
            continue
        rc, out = build(build_dir, target)
        if ok and rc != 0:
            print(f"{target}: should compile, but did not:\n{out[-4000:]}")
            failed = True
        elif not ok and rc == 0:
            print(f"{target}: compiled, but its message is outside the interface")
            failed = True
        elif not ok and not all(t in out for t in texts):
            print(f"{target}: failed, but not with all of {texts}:\n{out[-4000:]}")
            failed = True
        else:
            print(f"{target}: {'compiles' if ok else 'rejected: ' + ' / '.join(texts)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
