"""The Analytics Engine SQL of `micromoment analyze --sql`, run by ClickHouse itself.

Analytics Engine's SQL is a subset of ClickHouse's; chDB (ClickHouse in process, from
PyPI) runs the printed queries over a table laid out as the Worker writes Analytics
Engine data points (docs/analytics.md: `index1` the person, `blob1`…`blob14`,
`double1` at, `double2` value, `_sample_interval`), filled from simulated logs. Then:

- the answers of the people and experiment × goal queries, read back with
  `--aggregates`, must give the experiment results the logs give (people, conversions,
  value and every statistic), since the simulated people convert at most once per goal
  after their first exposure (the case the SQL computes exactly);
- the export query's rows, read back as log lines, must give the whole report the logs
  give, attribution included;
- with every row sampled at 1 in 4 (`_sample_interval = 4` on a quarter of the people,
  as Analytics Engine samples by `index1`), people and conversions come out weighted:
  four times the sampled people's counts.

This checks the SQL is valid ClickHouse and computes what the docs say; it cannot
prove Analytics Engine accepts every construct (it accepts fewer functions).

Usage: sql_check.py PATH/TO/micromoment WORKDIR
"""

import json
import subprocess
import sys
from pathlib import Path

from chdb import session

CLI, WORK = sys.argv[1], Path(sys.argv[2])
WORK.mkdir(parents=True, exist_ok=True)
BUNDLE = "fixtures/automotive.json"


def cli(*args):
    run = subprocess.run([CLI, *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"micromoment {' '.join(args)}: exit {run.returncode}: {run.stderr}")
    return run.stdout


logs = WORK / "sql-logs.ndjson"
cli("analyze-generate", "--bundle", BUNDLE, "--people", "3000", "--seed", "7", "-o", str(logs))
from_logs = json.loads(cli("analyze", str(logs), "--bundle", BUNDLE, "--json"))


def data_points(sample_every=1):
    """The logs as Analytics Engine rows; with `sample_every` > 1, one person in that
    many kept, each row weighted by it."""
    rows = []
    for line in logs.read_text().splitlines():
        e = json.loads(line)
        person = e.get("profile") or e["visitor"]
        if sample_every > 1 and int(person[-4:], 16) % sample_every:
            continue
        rows.append({
            "index1": person, "blob1": e["type"], "blob2": e.get("slot") or "", "blob3": e.get("content") or "",
            "blob4": e.get("candidate") or "", "blob5": e.get("experiment") or "", "blob6": e.get("variant") or "",
            "blob7": e.get("stage") or "", "blob8": e["bundle"], "blob9": "hash", "blob10": e.get("channel") or "",
            "blob11": e.get("device") or "", "blob12": e.get("goal") or "", "blob13": e["visitor"],
            "blob14": e.get("profile") or "", "double1": float(e["at"]), "double2": float(e.get("value") or 0.0),
            "_sample_interval": sample_every,
        })
    return rows


def run_queries(sample_every):
    db = session.Session()
    db.query("CREATE DATABASE IF NOT EXISTS t")
    columns = ", ".join([f"blob{i} String" for i in range(1, 15)])
    db.query(f"CREATE TABLE t.micromoment_exposures (timestamp DateTime DEFAULT now(), index1 String, {columns}, "
             "double1 Float64, double2 Float64, _sample_interval UInt32) ENGINE = Memory")
    points = WORK / f"points-{sample_every}.ndjson"
    points.write_text("\n".join(json.dumps(r) for r in data_points(sample_every)) + "\n")
    db.query(f"INSERT INTO t.micromoment_exposures (index1, {', '.join(f'blob{i}' for i in range(1, 15))}, "
             f"double1, double2, _sample_interval) SELECT * FROM file('{points}', JSONEachRow)")
    sql = cli("analyze", "--bundle", BUNDLE, "--sql", "--dataset", "t.micromoment_exposures")
    queries = [q.strip() for q in sql.split(";\n") if "SELECT" in q]
    answers, export = [], None
    for q in queries:
        # Keep the comment-free statement; FORMAT is passed to chDB instead.
        lines = [l for l in q.splitlines() if not l.startswith("--")]
        statement = "\n".join(lines)
        if statement.endswith("FORMAT JSONEachRow"):
            export = str(db.query(statement[: -len("FORMAT JSONEachRow")], "JSONEachRow"))
        else:
            assert statement.endswith("FORMAT JSON"), statement[-40:]
            answers.append(str(db.query(statement[: -len("FORMAT JSON")], "JSON")))
    db.close()
    return answers, export


answers, export = run_queries(1)
aggregates = WORK / "sql-answers.json"
aggregates.write_text("\n".join(answers))
from_sql = json.loads(cli("analyze", "--aggregates", str(aggregates), "--bundle", BUNDLE, "--json"))
assert from_sql["people"] == from_logs["people"], (from_sql["people"], from_logs["people"])
assert len(from_sql["experiments"]) == len(from_logs["experiments"]) == 3
for ours, theirs in zip(from_sql["experiments"], from_logs["experiments"]):
    for a, b in zip(ours["variants"], theirs["variants"]):
        assert (a["variant"], a["people"], a["conversions"]) == (b["variant"], b["people"], b["conversions"]), (ours["goal"], a, b)
        assert abs(a["value_sum"] - b["value_sum"]) < 1e-6 and abs(a["value_sum_squares"] - b["value_sum_squares"]) < 1e-3, (a, b)
    assert ours["srm_p"] == theirs["srm_p"]

def same(x, y, path="report"):
    """Equal, floats to 1e-9 (the export's row order numbers touches differently, so
    the Markov matrix is inverted in another order)."""
    if isinstance(x, dict):
        assert x.keys() == y.keys(), (path, x.keys() ^ y.keys())
        for k in x:
            same(x[k], y[k], f"{path}.{k}")
    elif isinstance(x, list):
        assert len(x) == len(y), (path, len(x), len(y))
        for i, (a, b) in enumerate(zip(x, y)):
            same(a, b, f"{path}[{i}]")
    elif isinstance(x, float) or isinstance(y, float):
        assert abs(x - y) <= 1e-9 * max(1.0, abs(x)), (path, x, y)
    else:
        assert x == y, (path, x, y)


exported = WORK / "sql-export.ndjson"
exported.write_text(export)
from_export = json.loads(cli("analyze", str(exported), "--bundle", BUNDLE, "--json"))
same(from_export, from_logs)

sampled, _ = run_queries(4)
(WORK / "sql-sampled.json").write_text("\n".join(sampled))
weighted = json.loads(cli("analyze", "--aggregates", str(WORK / "sql-sampled.json"), "--bundle", BUNDLE, "--json"))
kept = [r for r in data_points(4)]
kept_people = len({r["index1"] for r in kept if r["blob1"] == "exposure"})
assert weighted["people"] == 4 * kept_people, (weighted["people"], kept_people)
for e in weighted["experiments"]:
    for v in e["variants"]:
        assert v["people"] % 4 == 0 and v["conversions"] % 4 == 0, v
print(f"sql: {len(answers)} Analytics Engine queries run by chDB give the logs' figures "
      f"({from_logs['people']} people); the export reads back as the same report; 1-in-4 sampling weighs 4×")
