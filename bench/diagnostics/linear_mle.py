"""Maximum-likelihood estimation of a linear reward from scripted noisy preferences.

The theory check of the reward model's likelihood (Zhu, Jiao and Jordan 2023): with a linear
reward ``r(s, a) = <theta, phi(s, a)>`` and a Boltzmann-rational teacher (``beta = 1``, which
is exactly the Plackett-Luce / Bradley-Terry-Luce model the reward model assumes), the MLE is
consistent and its error shrinks like ``sqrt(d / n)``; the K-wise Plackett-Luce MLE is at least
as accurate as the estimate from splitting each ranking into its K(K-1)/2 implied pairs.

Clips are ``H`` steps of random features ``phi_t ~ N(0, I / H)``; their true rewards
``phi_t @ theta`` are judged by :class:`teachers.ScriptedTeacher`; ``theta_hat`` minimises
:func:`pebble.preferences.preference_nll` (convex in ``theta``) with L-BFGS. Prints the table
of ``||theta_hat - theta||`` (mean over seeds, and in brackets the asymptotic prediction
``sqrt(trace(covariance) / n)``) and writes ``bench/diagnostics/results/linear_mle.json``. With ``--beta b``
the MLE estimates ``b * theta`` (the teacher's utilities), and errors are measured against it.

    python bench/diagnostics/linear_mle.py        # n = 100 ... 10000, 16 seeds, K = 4
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pebble.preferences import preference_nll
from teachers import Clip, Query, ScriptedTeacher, TeachingContext

D, H = 6, 10


def true_theta(d: int = D) -> np.ndarray:
    """The fixed reward parameter: norm 1.5, so that score differences are informative but noisy."""
    theta = np.random.default_rng(12345).normal(size=d)
    return 1.5 * theta / np.linalg.norm(theta)


def simulate(
    n: int, k: int, theta: np.ndarray, seed: int, beta: float = 1.0, horizon: int = H
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` queries of ``k`` clips labelled by a scripted teacher.

    Returns the clips' summed features (n, k, d) (a clip's score is ``features @ theta``)
    and the teacher's rankings (n, k), best first.
    """
    rng = np.random.default_rng(seed)
    d = len(theta)
    phi = rng.normal(scale=1 / np.sqrt(horizon), size=(n, k, horizon, d))
    rewards = phi @ theta
    teacher = ScriptedTeacher(beta=beta)
    context = TeachingContext(0, 0, np.random.default_rng(seed + 1))
    no_actions = np.zeros((horizon, 0))
    mask = np.ones(horizon, bool)
    rankings = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        query = Query(i, tuple(Clip(phi[i, j], no_actions, rewards[i, j], mask) for j in range(k)))
        answer = teacher.judge(query, context)
        assert answer.kind == "ranking"
        rankings[i] = answer.ranking
    return phi.sum(axis=2), rankings


def split_into_pairs(features: np.ndarray, rankings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each ranking of K clips as its K(K-1)/2 implied pairs (winner first), treated as independent."""
    k = rankings.shape[1]
    pairs = [(a, b) for a, b in itertools.combinations(range(k), 2)]
    winners = np.stack([rankings[:, a] for a, _ in pairs], axis=1)  # (n, P)
    losers = np.stack([rankings[:, b] for _, b in pairs], axis=1)
    rows = np.arange(len(features))[:, None]
    pair_features = np.stack([features[rows, winners], features[rows, losers]], axis=2)  # (n, P, 2, d)
    pair_features = pair_features.reshape(-1, 2, features.shape[-1])
    return pair_features, np.tile(np.array([0, 1]), (len(pair_features), 1))


def fit(features: np.ndarray, rankings: np.ndarray) -> np.ndarray:
    """The maximum-likelihood ``theta``: minimises the mean Plackett-Luce NLL of the rankings (L-BFGS)."""
    x = torch.as_tensor(features, dtype=torch.float64)
    r = torch.as_tensor(rankings, dtype=torch.long)
    equal = torch.zeros(len(r), dtype=torch.bool)
    theta = torch.zeros(x.shape[-1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [theta], max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-14, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = preference_nll(x @ theta, r, equal).mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    closure()
    assert theta.grad is not None
    gradient = float(theta.grad.abs().max())
    if gradient > 1e-6:
        raise RuntimeError(f"L-BFGS did not converge: max |gradient| = {gradient:.2e}")
    return theta.detach().numpy()


def asymptotic_traces(k: int = 4, beta: float = 1.0, samples: int = 50_000, seed: int = 999) -> dict[str, float]:
    """Trace of the asymptotic covariance of ``sqrt(n) (theta_hat - theta)`` for the three estimators.

    For the MLEs (pairs, K-wise Plackett-Luce) it is the inverse Fisher information
    ``E[g g^T]^-1`` (g: gradient of one query's NLL at the true theta); for the split-pairs
    pseudo-likelihood it is the sandwich ``A^-1 B A^-1`` with ``A`` the expected Hessian of the
    summed pair NLLs of one ranking and ``B`` the covariance of their summed gradient. The
    expected error at n labels is then about ``sqrt(trace / n)``. Monte Carlo over ``samples``
    teacher-labelled queries.
    """
    theta = beta * true_theta()  # the identifiable parameter: the teacher's utilities are beta * reward

    def per_query_gradients(features: np.ndarray, rankings: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(features, dtype=torch.float64)
        scores = (x @ torch.as_tensor(theta)).requires_grad_(True)
        equal = torch.zeros(len(rankings), dtype=torch.bool)
        preference_nll(scores, torch.as_tensor(rankings), equal).sum().backward()
        assert scores.grad is not None
        return torch.einsum("nk,nkd->nd", scores.grad, x).numpy()  # a query's NLL depends on its own scores only

    traces = {}
    for key, size in (("pairs", 2), ("kwise_pl", k)):
        g = per_query_gradients(*simulate(samples, size, theta, seed=seed + size, beta=beta))
        traces[key] = float(np.trace(np.linalg.inv(g.T @ g / samples)))
    features, rankings = simulate(samples, k, theta, seed=seed + k, beta=beta)
    pair_x, pair_r = split_into_pairs(features, rankings)
    per_ranking = len(pair_x) // samples
    g = per_query_gradients(pair_x, pair_r).reshape(samples, per_ranking, -1).sum(1)
    diff = pair_x[:, 0] - pair_x[:, 1]
    p = 1 / (1 + np.exp(-diff @ theta))
    hessian = np.einsum("n,ni,nj->ij", p * (1 - p), diff, diff) / samples  # summed over the pairs of a ranking
    inverse = np.linalg.inv(hessian)
    traces["kwise_split"] = float(np.trace(inverse @ (g.T @ g / samples) @ inverse))
    return traces


def errors(ns: list[int], seed: int, k: int = 4, beta: float = 1.0) -> list[dict[str, float]]:
    """||theta_hat - beta theta|| for each n in ``ns``: from n pairs, n K-wise rankings (Plackett-Luce), split pairs.

    One data set of ``max(ns)`` pairs and one of ``max(ns)`` rankings per seed; smaller n use its first n queries.
    """
    theta = true_theta()
    pair_x, pair_r = simulate(max(ns), 2, theta, seed=2 * seed, beta=beta)
    rank_x, rank_r = simulate(max(ns), k, theta, seed=2 * seed + 1, beta=beta)
    theta = beta * theta  # what the MLE estimates: the teacher's utilities are beta * reward
    rows = []
    for n in ns:
        split_x, split_r = split_into_pairs(rank_x[:n], rank_r[:n])
        rows.append(
            {
                "n": n,
                "pairs": float(np.linalg.norm(fit(pair_x[:n], pair_r[:n]) - theta)),
                "kwise_pl": float(np.linalg.norm(fit(rank_x[:n], rank_r[:n]) - theta)),
                "kwise_split": float(np.linalg.norm(fit(split_x, split_r) - theta)),
            }
        )
    return rows


def table(
    ns: list[int], seeds: list[int], k: int = 4, beta: float = 1.0, traces: dict[str, float] | None = None
) -> list[dict[str, float]]:
    """For each n: mean, std, mean square and asymptotic prediction of the three errors; MSE ratio split / PL."""
    runs = [errors(ns, seed, k, beta) for seed in seeds]
    traces = asymptotic_traces(k, beta) if traces is None else traces
    rows = []
    for i, n in enumerate(ns):
        row: dict[str, float] = {"n": n}
        for key in ("pairs", "kwise_pl", "kwise_split"):
            values = np.array([run[i][key] for run in runs])
            row[key] = float(values.mean())
            row[key + "_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            row[key + "_mse"] = float(np.mean(values**2))
            row[key + "_theory"] = math.sqrt(traces[key] / n)  # root of the asymptotic mean squared error
        row["split_over_pl_mse"] = row["kwise_split_mse"] / row["kwise_pl_mse"]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", type=int, nargs="+", default=[100, 300, 1000, 3000, 10_000])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--k", type=int, default=4, help="clips per ranking (default 4)")
    parser.add_argument("--beta", type=float, default=1.0, help="teacher rationality (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tic = time.perf_counter()
    traces = asymptotic_traces(args.k, args.beta)
    rows = table(args.ns, list(range(args.seeds)), args.k, args.beta, traces)
    seconds = time.perf_counter() - tic
    print(f"d = {D}, H = {H}, |theta| = 1.5, beta = {args.beta}, K = {args.k}, mean over {args.seeds} seeds")
    print("mean error +- std over seeds [asymptotic prediction]")
    print(f"{'n':>7} {'pairs':>24} {'K-wise PL':>24} {'K-wise split':>24} {'MSE split/PL':>13}")
    for row in rows:
        cells = [
            f"{row[key]:.4f}+-{row[key + '_std']:.4f} [{row[key + '_theory']:.4f}]"
            for key in ("pairs", "kwise_pl", "kwise_split")
        ]
        print(f"{row['n']:>7} {cells[0]:>24} {cells[1]:>24} {cells[2]:>24} {row['split_over_pl_mse']:>13.3f}")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
    from common import DIAGNOSTICS_RESULTS, write_result

    path = write_result(
        "linear_mle",
        {
            "d": D,
            "horizon": H,
            "theta_norm": 1.5,
            "beta": args.beta,
            "k": args.k,
            "seeds": args.seeds,
            "seconds": seconds,
            "metric": "||theta_hat - theta||_2: mean, std and mean square over seeds",
            "asymptotic_covariance_traces": traces,
            "rows": rows,
        },
        DIAGNOSTICS_RESULTS,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
