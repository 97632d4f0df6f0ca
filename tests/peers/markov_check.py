"""`micromoment analyze --aggregates` attribution against an exact solve and against
ChannelAttribution 2.2.5.

The same path counts (path → conversions, nulls, value) go to micromoment as aggregate
path rows and to the peers:

- the Markov removal effects (first order: start → touches → conversion | null) must
  equal, to 1e-6, an independent exact computation written here: the transition
  matrix from the counts, and for each channel removed (its incoming transitions sent
  to null) the absorption probability solved with `numpy.linalg.solve`;
  conversions credited must equal total × RE / ΣRE;
- ChannelAttribution's `markov_model` (order 1, `var_null` passed by name,
  `conv_par=0.001`, `nsim_start=1e6`, `max_step=100`) estimates the same removal
  effects by simulation: they must agree within its simulation error. `max_step`
  matters: by default it stops each simulated journey at the longest observed path,
  which on paths that revisit a touch (a > b > a > c) biases removal effects by up to
  25 % against the chain's own (infinite-horizon) answer; at 100 steps the cut-off
  mass is negligible. What is left is Monte Carlo error, about 0.1–0.5 % of a removal
  effect at 10⁶ journeys; the tolerance is 3 % of each value (several standard errors),
  so a real difference (a wrong transition count, a removal that does not go to null)
  fails while sampling noise does not;
- `heuristic_models` (first touch, last touch, linear) must equal micromoment's, to
  1e-9, conversions and value.

Usage: markov_check.py PATH/TO/micromoment WORKDIR
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
import numpy as np
import pandas as pd
from ChannelAttribution import heuristic_models, markov_model

CLI, WORK = sys.argv[1], Path(sys.argv[2])
WORK.mkdir(parents=True, exist_ok=True)
CHANNELS = ["brand-film", "suv-teaser", "ev-teaser", "test-drive", "dealer-offer", "finance"]


def paths(seed, count):
    """Random journeys over six contents, no consecutive repeats, integer counts."""
    rng = np.random.default_rng(seed)
    out = {}
    while len(out) < count:
        length = int(rng.integers(1, 5))
        path = []
        while len(path) < length:
            c = CHANNELS[int(rng.integers(0, len(CHANNELS)))]
            if not path or path[-1] != c:
                path.append(c)
        key = tuple(path)
        if key in out:
            continue
        # Paths ending in test-drive or dealer-offer convert more often.
        strength = 0.15 + 0.25 * (path[-1] in ("test-drive", "dealer-offer")) + 0.05 * len(path)
        conversions = int(rng.binomial(200, strength))
        nulls = int(rng.integers(20, 400))
        value = float(np.round(conversions * rng.uniform(80, 160), 2))
        out[key] = (conversions, nulls, value)
    return out


def exact_removal_effects(counts):
    states = ["(start)"] + CHANNELS
    index = {s: i for i, s in enumerate(states)}
    m = len(states)
    t = np.zeros((m, m))
    conv = np.zeros(m)
    null = np.zeros(m)
    for path, (c, n, _) in counts.items():
        w = c + n
        prev = 0
        for ch in path:
            t[prev, index[ch]] += w
            prev = index[ch]
        conv[prev] += c
        null[prev] += n
    out = t.sum(axis=1) + conv + null

    def p_conv(removed):
        q = np.divide(t, out[:, None], out=np.zeros_like(t), where=out[:, None] > 0)
        r = np.divide(conv, out, out=np.zeros_like(conv), where=out > 0)
        if removed is not None:
            q[:, removed] = 0.0  # transitions into it now end in null
            q[removed, :] = 0.0
            r = r.copy()
            r[removed] = 0.0
        h = np.linalg.solve(np.eye(m) - q, r)
        return h[0]

    base = p_conv(None)
    return {ch: 1.0 - p_conv(index[ch]) / base for ch in CHANNELS}


def ours(counts, name):
    bundle = {
        "id": "peer", "version": 1, "journey": {"stages": ["any"]},
        "content": {c: {"html": c} for c in CHANNELS},
        "slots": {"hero": {"default": CHANNELS[0]}},
        "goals": {"purchase": {"event": "order_completed", "value": True}},
    }
    b = WORK / f"{name}.bundle.json"
    b.write_text(json.dumps(bundle))
    rows = [{"goal": "purchase", "path": [{"content": c, "slot": "hero", "candidate": None, "channel": "web"} for c in p],
             "conversions": c, "nulls": n, "value": v} for p, (c, n, v) in counts.items()]
    agg = WORK / f"{name}.paths.ndjson"
    agg.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    run = subprocess.run([CLI, "analyze", "--aggregates", str(agg), "--bundle", str(b), "--json"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"micromoment exited {run.returncode}: {run.stderr}")
    result = json.loads(run.stdout)
    return {a["model"]: {r["content"]: r for r in a["rows"]} for a in result["attribution"] if a["goal"] == "purchase"}


def frame(counts):
    return pd.DataFrame({
        "path": [" > ".join(p) for p in counts],
        "total_conversions": [c for c, _, _ in counts.values()],
        "total_null": [n for _, n, _ in counts.values()],
        "total_conversion_value": [v for _, _, v in counts.values()],
    })


worst_exact = worst_sim = worst_heuristic = 0.0
# ChannelAttribution's simulation takes minutes per example (2 on the 30-path one, 6 on
# the 12-path one, whose loops make long journeys), so it runs on one; the exact solve
# and the heuristics on all three.
for seed, count, simulate in [(1, 12, False), (2, 30, True), (3, 120, False)]:
    counts = paths(seed, count)
    name = f"paths-{seed}"
    mine = ours(counts, name)
    exact = exact_removal_effects(counts)
    total = sum(c for c, _, _ in counts.values())
    total_value = sum(v for _, _, v in counts.values())
    for ch, re in exact.items():
        got = mine["markov"][ch]["removal_effect"]
        assert abs(got - re) <= 1e-6, f"{name} {ch}: removal effect {got} vs exact {re}"
        credited = total * re / sum(exact.values())
        assert abs(mine["markov"][ch]["conversions"] - credited) <= 1e-6, (name, ch)
        worst_exact = max(worst_exact, abs(got - re))

    df = frame(counts)
    if simulate:
        started = time.monotonic()
        sim = markov_model(df, "path", "total_conversions", var_value="total_conversion_value", var_null="total_null",
                           order=1, conv_par=0.001, nsim_start=1e6, max_step=100, out_more=True, verbose=False, flg_pro=False)
        print(f"{name}: ChannelAttribution simulated in {time.monotonic() - started:.0f} s", file=sys.stderr)
        effects = sim["removal_effects"].set_index("channel_name")
        result = sim["result"].set_index("channel_name")
        for ch in CHANNELS:
            theirs = effects.loc[ch, "removal_effects_conversion"]
            mine_re = mine["markov"][ch]["removal_effect"]
            rel = abs(mine_re - theirs) / max(theirs, 1e-12)
            assert rel <= 0.03, f"{name} {ch}: removal effect {mine_re} vs ChannelAttribution {theirs} ({rel:.1%})"
            rel_conv = abs(mine["markov"][ch]["conversions"] - result.loc[ch, "total_conversions"]) / result.loc[ch, "total_conversions"]
            rel_value = abs(mine["markov"][ch]["value"] - result.loc[ch, "total_conversion_value"]) / result.loc[ch, "total_conversion_value"]
            assert rel_conv <= 0.03 and rel_value <= 0.03, (name, ch, rel_conv, rel_value)
            worst_sim = max(worst_sim, rel, rel_conv, rel_value)

    h = heuristic_models(df, "path", "total_conversions", var_value="total_conversion_value", flg_pro=False).set_index("channel_name")
    for model, column in [("first_touch", "first_touch"), ("last_touch", "last_touch"), ("linear", "linear_touch")]:
        for ch in CHANNELS:
            row = mine[model].get(ch, {"conversions": 0.0, "value": 0.0})
            for ours_key, their_key in [("conversions", f"{column}_conversions"), ("value", f"{column}_value")]:
                diff = abs(row[ours_key] - h.loc[ch, their_key])
                assert diff <= 1e-9 * max(1.0, abs(h.loc[ch, their_key])), (name, model, ch, ours_key, row[ours_key], h.loc[ch, their_key])
                worst_heuristic = max(worst_heuristic, diff)
    assert abs(sum(r["conversions"] for r in mine["markov"].values()) - total) < 1e-6
    assert abs(sum(r["value"] for r in mine["markov"].values()) - total_value) < 1e-6

print(f"markov: exact solve within {worst_exact:.1e}; ChannelAttribution 2.2.5 simulation within {worst_sim:.2%}; "
      f"heuristics within {worst_heuristic:.1e}")
