#!/usr/bin/env bash
# `micromoment analyze` against its reference implementations, in Python venvs this
# script makes (PyPI only): gbstats 0.8.0 (GrowthBook's stats engine) for the experiment
# figures and scipy for the SRM check; ChannelAttribution 2.2.5 and an exact numpy solve
# for the attribution models (target/peers-venv); chDB 4.4.0, ClickHouse in process, for
# the Analytics Engine SQL (target/sql-venv: it needs numpy 2, gbstats numpy 1).
# Installs are skipped when present.
set -euo pipefail
cd "$(dirname "$0")/../.."

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
venv=target/peers-venv
requirements=(gbstats==0.8.0 scipy==1.17.1 numpy==1.26.4 pandas==1.5.3 channelattribution==2.2.5 matplotlib==3.11.2)
if [[ ! -x $venv/bin/python ]]; then
  "$python" -m venv "$venv"
fi
if ! "$venv/bin/pip" freeze 2>/dev/null | grep -qi '^gbstats==0.8.0$' \
  || ! "$venv/bin/pip" freeze 2>/dev/null | grep -qi '^channelattribution==2.2.5$'; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"
fi

sql_venv=target/sql-venv
if [[ ! -x $sql_venv/bin/python ]]; then
  "$python" -m venv "$sql_venv"
fi
if ! "$sql_venv/bin/pip" freeze 2>/dev/null | grep -qi '^chdb==4.4.0$'; then
  "$sql_venv/bin/pip" install --quiet --disable-pip-version-check chdb==4.4.0
fi

cargo build --locked --bin micromoment
cli=target/debug/micromoment
work=target/peers-work
rm -rf "$work"
export MPLBACKEND=Agg
"$venv/bin/python" tests/peers/gbstats_check.py "$cli" "$work"
# ChannelAttribution prints an advertisement on import; only our lines matter.
"$venv/bin/python" tests/peers/markov_check.py "$cli" "$work" | grep -v -e 'ChannelAttribution Pro' -e '^Version: '
"$sql_venv/bin/python" tests/peers/sql_check.py "$cli" "$work"
