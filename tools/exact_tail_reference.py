"""Independent high-precision reference for widthlab's exact per-layer tail and exact_tail widths.

    P(|sqrt(X) - 1| > t),  X = (2/n) chi^2_K,  K ~ Binomial(n, 1/2)   (theory.md section 5)
  = sum_k b(k) [ Q(k/2, (1+t)^2 n/4) + P(k/2, (1-t)^2 n/4) * [t < 1] ],
with Q, P the regularized incomplete gamma functions, chi^2_0 = 0 (so P(0, x) = 1 for x > 0).

Method (no windows, no asymptotics, mpmath at 50 digits):
  * n <= 300000: every k from 0 to n. b(k) by b(k+1) = b(k) (n-k)/(k+1) from b(0) = 2^-n;
    Q upwards from the exact Q(0, x) = 0 and Q(1/2, x) = erfc(sqrt x) by
    Q(a+1) = Q(a) + x^a e^-x / Gamma(a+1); P downwards from mpmath's gammainc at the top by
    P(a-1) = P(a) + x^(a-1) e^-x / Gamma(a). All sums of positive terms.
  * larger n: the same recurrences over k in n/2 +/- 45 sqrt(n) (90 binomial standard
    deviations; the edge terms are printed to show they are negligible), started from values of
    Q and P that are themselves sums of positive terms (q_and_p).
Widths: the smallest m with 2 N L P(m) <= delta, with t = (1 + epsilon)^(1/L) - 1; checked as
"m passes and m - 1 fails", plus a scan from 1 for small answers.

Run: python tools/exact_tail_reference.py   (needs mpmath; a few minutes)
"""
import sys
import mpmath as mp

mp.mp.dps = 50


def d_step(a, x):
    """x^a e^-x / Gamma(a+1)"""
    return mp.exp(a * mp.log(x) - x - mp.loggamma(a + 1))


def upper_terms_full(n, x):
    total = mp.mpf(0)
    b = mp.mpf(2) ** (-n)
    bs = []
    for k in range(n + 1):
        bs.append(b)
        b = b * (n - k) / (k + 1)
    for parity in (0, 1):
        if parity == 0:
            q, a = mp.mpf(0), mp.mpf(0)
        else:
            q, a = mp.erfc(mp.sqrt(x)), mp.mpf(1) / 2
        d = d_step(a, x)
        for k in range(parity, n + 1, 2):
            total += bs[k] * q
            q += d
            d = d * x / (a + 1)
            a += 1
    return total, bs


def lower_terms_full(n, x, bs):
    if x == 0:
        return mp.mpf(0)
    total = mp.mpf(0)
    for top in (n, n - 1):
        if top < 0:
            continue
        a = mp.mpf(top) / 2
        p = mp.gammainc(a, 0, x, regularized=True) if top > 0 else mp.mpf(1)
        d = d_step(a, x)
        k = top
        while True:
            total += bs[k] * p
            if k < 2:
                break
            d = d * a / x  # d(a-1)
            p += d
            a -= 1
            k -= 2
    return total


def q_and_p(a0, x):
    """(Q(a0, x), P(a0, x)) for a half-integer a0 > 0 by sums of positive terms only:
    below x, Q(a0) = Q(base) + sum_{base <= a < a0} d(a) summed downwards from a0 - 1 until the
    terms vanish (base = 1/2 with Q = erfc(sqrt x), or 0 with Q = 0); above x,
    P(a0) = sum_{j >= 0} d(a0 + j). The other one is the complement (50 digits: no loss where
    it is used, since the complement is then at least about 1/2)."""
    a0 = mp.mpf(a0)
    if a0 <= x:
        total, a = mp.mpf(0), a0 - 1
        d = d_step(a, x) if a >= 0 else mp.mpf(0)
        while a >= 0:
            total += d
            if d < total * mp.mpf(10) ** -60:
                break
            d = d * a / x  # d(a-1) = d(a) a / x
            a -= 1
        else:
            total += mp.erfc(mp.sqrt(x)) if (2 * a0) % 2 == 1 else 0
        return total, 1 - total
    total, a = mp.mpf(0), a0
    d = d_step(a, x)
    while True:
        total += d
        if d < total * mp.mpf(10) ** -60:
            break
        d = d * x / (a + 1)
        a += 1
    return 1 - total, total


def side_windowed(n, x, upper):
    """Same recurrences over k in n/2 +/- 45 sqrt(n) (90 binomial standard deviations),
    started from q_and_p; prints the edge terms relative to the total as a check."""
    if not upper and x == 0:
        return mp.mpf(0)
    half_width = int(45 * n ** 0.5)
    k0, k1 = max(0, n // 2 - half_width), min(n, n // 2 + half_width)
    total, edges = mp.mpf(0), []
    for s in (k0, k0 + 1):
        if upper:
            k = s
            a = mp.mpf(k) / 2
            b = mp.exp(mp.loggamma(n + 1) - mp.loggamma(k + 1) - mp.loggamma(n - k + 1) - n * mp.log(2))
            q = q_and_p(a, x)[0] if k > 0 else mp.mpf(0)
            d = d_step(a, x)
            edges.append(b * q)
            while k <= k1:
                total += b * q
                last = b * q
                q += d
                d = d * x / (a + 1)
                b = b * (n - k) * (n - k - 1) / ((k + 1) * (k + 2))
                a += 1
                k += 2
            edges.append(last)
        else:
            k = k1 if (k1 - s) % 2 == 0 else k1 - 1
            a = mp.mpf(k) / 2
            b = mp.exp(mp.loggamma(n + 1) - mp.loggamma(k + 1) - mp.loggamma(n - k + 1) - n * mp.log(2))
            p = q_and_p(a, x)[1] if k > 0 else mp.mpf(1)
            d = d_step(a, x)
            edges.append(b * p)
            while k >= s:
                total += b * p
                last = b * p
                if k < 2:
                    break
                d = d * a / x
                p += d
                b = b * k * (k - 1) / ((n - k + 2) * (n - k + 1))
                a -= 1
                k -= 2
            edges.append(last)
    print(f"    (n={n}, {'upper' if upper else 'lower'}: largest edge term / total = "
          f"{mp.nstr(max(edges) / total, 3)})")
    return total


def tail(n, t):
    t = mp.mpf(t)
    xu = (1 + t) ** 2 * n / 4
    xl = (1 - t) ** 2 * n / 4 if t < 1 else mp.mpf(0)
    if n <= 300000:
        up, bs = upper_terms_full(n, xu)
        lo = lower_terms_full(n, xl, bs) if t < 1 else mp.mpf(0)
        return up + lo
    up = side_windowed(n, xu, True)
    lo = side_windowed(n, xl, False) if t < 1 else mp.mpf(0)
    return up + lo


def per_layer(eps, depth):
    return mp.expm1(mp.log1p(mp.mpf(eps)) / depth)


def check_width(eps, delta, depth, samples, want, scan_limit=2000):
    t = per_layer(eps, depth)
    target = mp.mpf(delta) / (2 * samples * depth)
    p_at = tail(want, t)
    p_below = tail(want - 1, t) if want > 1 else None
    ok_at = p_at <= target
    fails_below = p_below is None or p_below > target
    scan = ""
    if want <= scan_limit:
        first = next(m for m in range(1, want + 1) if tail(m, t) <= target)
        scan = f"; scan from 1: first passing m = {first}"
    print(f"(eps={eps}, delta={delta}, L={depth}, N={samples}) t={mp.nstr(t, 17)}: "
          f"m={want}: 2NL P = {mp.nstr(2 * samples * depth * p_at, 12)} <= delta: {ok_at}; "
          f"m-1: 2NL P = {mp.nstr(2 * samples * depth * p_below, 12) if p_below is not None else '-'} "
          f"> delta: {fails_below}{scan}")
    sys.stdout.flush()
    return ok_at and fails_below


WIDTHS = [
    (0.5, 1e-300, 1, 1, 7367),
    (0.2, 1e-150, 1, 1, 22049),
    (1.0, 1e-200, 10, 100, 227777),
    (0.05, 0.2, 1, 1, 1354),
    (3.0, 0.3, 1, 1, 1),
    (2.0, 0.05, 1, 1000, 6),
    # N = 2000, L = 10, delta = 0.05 with epsilon' = 0.05 / 0.1 / 0.2 (epsilon = (1 + e')^10 - 1)
    (float(mp.mpf(1.05) ** 10 - 1), 0.05, 10, 2000, 11750),
    (float(mp.mpf(1.1) ** 10 - 1), 0.05, 10, 2000, 2938),
    (float(mp.mpf(1.2) ** 10 - 1), 0.05, 10, 2000, 735),
]

TAILS = [  # (n, t): the layer tail itself
    (1, 3.0), (6, 2.0), (1, 0.5), (10, 1.0), (50, 0.95), (500, 0.2285), (4000, 0.0143),
    (1354, 0.05), (7367, 0.5), (22049, 0.2), (227777, 0.0717734625362931),
    (1_000_000, 0.0415), (30_000_000, 0.0076), (1_000_000_000, 0.0013), (1_000_000_000, 0.0002),
]

if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if which in ("all", "tails"):
        for n, t in TAILS:
            p = tail(n, t)
            print(f"layer_tail({n}, {t}) = {mp.nstr(p, 17)}  ln = {mp.nstr(mp.log(p), 17)}")
            sys.stdout.flush()
    if which in ("all", "widths"):
        for case in WIDTHS:
            check_width(*case)
