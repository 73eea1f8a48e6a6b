"""The child program of the launcher tests (`python -m r1jax.launch --module=mp_echo`).

Prints what the launcher gave it (its R1JAX_* variables, the device-count flag, JAX_PLATFORMS) and
then, as `--exit=I:CODE` / `--hang=I` ask for process I, exits with CODE or sleeps until killed.
No JAX: it starts in milliseconds, so the launcher's own behaviour is what the tests time.
"""

import os
import sys
import time


def main(argv: list[str]) -> int:
    i = int(os.environ["R1JAX_PROCESS_ID"])
    keys = ("R1JAX_COORDINATOR", "R1JAX_NUM_PROCESSES", "R1JAX_PROCESS_ID", "JAX_PLATFORMS")
    print(" ".join(f"{k}={os.environ.get(k, '')}" for k in keys), flush=True)
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')}", flush=True)
    print(f"EXTRA={os.environ.get('MP_ECHO_EXTRA', '')}", flush=True)
    for arg in argv:
        key, _, value = arg.partition("=")
        who, _, code = value.partition(":")
        if int(who) != i:
            continue
        if key == "--exit":
            return int(code)
        if key == "--hang":
            time.sleep(600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
