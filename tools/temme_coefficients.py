"""Coefficients of Temme's uniform expansion of the regularized incomplete gamma functions.

    Q(a, x) = erfc(eta sqrt(a/2)) / 2 + R,   P(a, x) = erfc(-eta sqrt(a/2)) / 2 - R,
    R = exp(-a eta^2 / 2) / sqrt(2 pi a) * sum_n C_n(eta) a^-n,
    mu = x/a - 1, eta^2 / 2 = mu - ln(1 + mu), sign(eta) = sign(mu),
    C_0 = 1/mu - 1/eta,  C_n = (1/eta) dC_{n-1}/deta + (-1)^n g_n / mu,
    g_n the coefficients of Stirling's series Gamma*(a) ~ sum g_n a^-n.

With u = 1/mu, w = 1/eta and dmu/deta = eta (1 + mu) / mu, every C_n is a polynomial in (u, w):
    C_n = -u^2 (u + 1) dC_{n-1}/du - w^3 dC_{n-1}/dw + (-1)^n g_n u.
Near eta = 0 these polynomials cancel badly, so the Taylor series in eta is used there.
This script prints both (exact rationals, then as f64 literals for src/theory/special.rs) and
checks the expansion against mpmath. Run: python tools/temme_coefficients.py (needs mpmath).
"""
from fractions import Fraction as F
import mpmath as mp

N_TERMS = 5   # C_0 .. C_4
ORDER = 40    # Taylor terms kept for every C_n
G = [F(1), F(1, 12), F(1, 288), F(-139, 51840), F(-571, 2488320), F(163879, 209018880)]


def poly_forms():
    """C_n as {(i, j): coeff} meaning coeff * u^i * w^j."""
    c = [{(1, 0): F(1), (0, 1): F(-1)}]
    for n in range(1, N_TERMS):
        prev, nxt = c[-1], {}
        for (i, j), v in prev.items():
            if i:  # -u^2 (u + 1) * i u^(i-1)
                for (di, dv) in ((i + 2, -i * v), (i + 1, -i * v)):
                    nxt[(di, j)] = nxt.get((di, j), 0) + dv
            if j:  # -w^3 * j w^(j-1)
                nxt[(i, j + 2)] = nxt.get((i, j + 2), 0) - j * v
        nxt[(1, 0)] = nxt.get((1, 0), 0) + (-1) ** n * G[n]
        c.append({k: v for k, v in nxt.items() if v != 0})
    return c


# Truncated power series in eta (lists of Fractions).
M = ORDER + 2 * N_TERMS + 4


def mul(a, b):
    out = [F(0)] * M
    for i, x in enumerate(a):
        if x:
            for j, y in enumerate(b[: M - i]):
                out[i + j] += x * y
    return out


def recip(a):  # 1 / a, a[0] != 0
    out = [F(0)] * M
    out[0] = 1 / a[0]
    for k in range(1, M):
        out[k] = -sum(a[j] * out[k - j] for j in range(1, k + 1)) / a[0]
    return out


def mu_over_eta():
    """s(eta) = mu / eta, from eta = mu * g(mu), g(mu) = sqrt(2 (mu - ln(1+mu)) / mu^2)."""
    # h(mu) = 2 (mu - ln(1+mu)) / mu^2 = sum_{k>=0} 2 (-1)^k mu^k / (k + 2)
    h = [F(2 * (-1) ** k, k + 2) for k in range(M)]
    # g = sqrt(h), h[0] = 1
    g = [F(0)] * M
    g[0] = F(1)
    for k in range(1, M):
        g[k] = (h[k] - sum(g[j] * g[k - j] for j in range(1, k))) / 2
    # Fixed point: s = 1 / g(eta * s)
    s = [F(1)] + [F(0)] * (M - 1)
    for _ in range(M):
        mu = [F(0)] + s[: M - 1]  # eta * s
        comp = [F(0)] * M  # g(mu) by Horner
        for coef in reversed(g):
            comp = mul(comp, mu)
            comp[0] += coef
        s = recip(comp)
    return s


def taylor_forms():
    s = mu_over_eta()
    r = recip(s)  # eta / mu = r  ->  1/mu = r / eta
    # C_n(eta) = sum_k t_k eta^k; keep as Laurent dict to check the cancellation of 1/eta.
    c0 = {k - 1: r[k] for k in range(M)}  # 1/mu
    c0[-1] -= 1  # - 1/eta
    assert c0[-1] == 0
    forms = [{k: v for k, v in c0.items() if k >= 0}]
    for n in range(1, N_TERMS):
        prev, nxt = forms[-1], {}
        for k, v in prev.items():  # (1/eta) d/deta
            if k:
                nxt[k - 2] = nxt.get(k - 2, 0) + k * v
        for k in range(M):  # (-1)^n g_n / mu
            nxt[k - 1] = nxt.get(k - 1, 0) + (-1) ** n * G[n] * r[k]
        assert nxt.get(-1, 0) == 0 and nxt.get(-2, 0) == 0, (n, nxt.get(-1), nxt.get(-2))
        forms.append({k: v for k, v in nxt.items() if k >= 0})
    return [[forms[n].get(k, F(0)) for k in range(ORDER)] for n in range(N_TERMS)]


def temme_q(a, x, polys):
    a, x = mp.mpf(a), mp.mpf(x)
    m = (x - a) / a
    e = mp.sign(m) * mp.sqrt(2 * (m - mp.log1p(m)))
    u, w = 1 / m, 1 / e
    s = sum(sum(v * u**i * w**j for (i, j), v in polys[n].items()) / a**n for n in range(N_TERMS))
    return mp.erfc(e * mp.sqrt(a / 2)) / 2 + mp.exp(-a * e**2 / 2) / mp.sqrt(2 * mp.pi * a) * s


if __name__ == "__main__":
    polys = poly_forms()
    taylor = taylor_forms()
    for n in range(N_TERMS):
        print(f"C_{n} polynomial in (u, w):", {k: str(v) for k, v in sorted(polys[n].items())})
        print(f"C_{n} Taylor head:", [str(c) for c in taylor[n][:5]])
    print("\n// f64 literals")
    for n in range(N_TERMS):
        print(f"const C{n}_TAYLOR: [f64; {ORDER}] = [")
        for c in taylor[n]:
            print(f"    {float(c)!r},")
        print("];")
    for n in range(N_TERMS):
        terms = " + ".join(f"({float(v)!r}) u^{i} w^{j}" for (i, j), v in sorted(polys[n].items()))
        print(f"// C_{n} = {terms}")
    mp.mp.dps = 40
    # Taylor vs polynomial at eta = 0.3 and 0.9.
    for e in (mp.mpf("0.3"), mp.mpf("-0.9"), mp.mpf("1.4")):
        m = mp.findroot(lambda m: m - mp.log1p(m) - e**2 / 2, e)
        for n in range(N_TERMS):
            p = sum(v * (1 / m) ** i * (1 / e) ** j for (i, j), v in polys[n].items())
            t = sum(c * e**k for k, c in enumerate(taylor[n]))
            print(f"eta={e} C_{n}: poly {mp.nstr(p, 15)} taylor {mp.nstr(t, 15)}")
    for a, x in [(1000, 1100), (1000, 900), (1e4, 1.2e4), (1e6, 1.001e6), (5e8, 5.003e8), (200, 260)]:
        ref = mp.gammainc(a, x, mp.inf, regularized=True)
        got = temme_q(a, x, polys)
        print(f"a={a} x={x}: rel err {mp.nstr(abs(got / ref - 1), 3)}  (Q={mp.nstr(ref, 10)})")
