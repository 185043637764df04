"""Password hashing throughput: one core vs `PasswordHasher` on all cores.

    python bench/hash_bench.py [N] [--algorithm argon2id|bcrypt] [--rounds R]

Hashes N passwords on one core, then through the pool (workers started beforehand, as in
a long migration; the cold figure includes their start-up), R times, and keeps the best
round of each: other processes on the machine only ever slow a round down. Prints both
rates and pool / single; the target is a ratio of at least 0.85 x cores. The load average
before the run is printed too: on a busy machine the ratio says little.
"""

from __future__ import annotations

import argparse
import os
import time

from lite2pg.transforms.passwords import PasswordHasher, PasswordPolicy, hash_plaintext


def single_rate(policy: PasswordPolicy, passwords: list[str]) -> float:
    """Hashes per second in this process."""
    start = time.perf_counter()
    for password in passwords:
        hash_plaintext(policy, password)
    return len(passwords) / (time.perf_counter() - start)


def pool_rates(policy: PasswordPolicy, passwords: list[str]) -> tuple[float, float]:
    """(warm rate, cold rate) through PasswordHasher."""
    start = time.perf_counter()
    with PasswordHasher(policy) as hasher:
        hasher.start()
        warm_start = time.perf_counter()
        results = list(hasher.hash_many(enumerate(passwords)))
        end = time.perf_counter()
    assert len(results) == len(passwords)
    assert all(result.source == "hashed" for _, result in results)
    n = len(passwords)
    return n / (end - warm_start), n / (end - start)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=200, help="passwords to hash")
    parser.add_argument("--algorithm", choices=["argon2id", "bcrypt"], default="argon2id")
    parser.add_argument("--rounds", type=int, default=3, help="keep the best of R rounds")
    args = parser.parse_args()
    policy = PasswordPolicy(algorithm=args.algorithm)
    cores = os.cpu_count() or 1
    passwords = [f"correct horse battery {i}" for i in range(args.n)]
    load = os.getloadavg()[0]

    single = warm = cold = 0.0
    for _ in range(args.rounds):
        single = max(single, single_rate(policy, passwords))
        round_warm, round_cold = pool_rates(policy, passwords)
        warm, cold = max(warm, round_warm), max(cold, round_cold)

    target = 0.85 * cores
    print(f"{policy.fingerprint()}, N={args.n}, best of {args.rounds}, cores={cores}")
    print(f"load average before: {load:.2f}")
    print(f"single core: {single:8.1f} hashes/s ({1000 / single:.1f} ms/hash)")
    print(f"pool (warm): {warm:8.1f} hashes/s  ratio {warm / single:.2f} (target >= {target:.2f})")
    print(f"pool (cold): {cold:8.1f} hashes/s  ratio {cold / single:.2f}")


if __name__ == "__main__":
    main()
