#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from the repository's fixtures.

Run from the repository root after `cargo build --bin micromoment`:
    python3 fuzz/make-seeds.py
Each target's seeds go to fuzz/seeds/<target>/ (committed), named by content hash, so a
rerun only adds what changed. `fuzz/run.sh` grows a working corpus in fuzz/corpus/
(not committed) from them.
"""
import base64
import hashlib
import json
import pathlib
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
CLI = ROOT / "target" / "debug" / "micromoment"
CORPUS = ROOT / "fuzz" / "seeds"
KEYS = {"current": "k1", "keys": {"k1": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}}


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cli(*args):
    return subprocess.run([str(CLI), *args], check=True, capture_output=True, text=True).stdout.strip()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        keys = pathlib.Path(tmp) / "keys.json"
        keys.write_text(json.dumps(KEYS))
        fixed = ["--visitor", "0123456789abcdef0123456789abcdef", "--now", "2026-11-23T12:00:00Z"]
        tokens = [
            cli("token", "mint", "--keys", str(keys), *fixed),
            cli("token", "mint", "--keys", str(keys), "--stage", "decision", "--segments", "vip,b2b", *fixed),
            # A linked device's (v2).
            cli("token", "mint", "--keys", str(keys), "--profile", "51" * 16, *fixed),
        ]
        # A returning visitor with impressions, intents and an experiment.
        answer = json.loads(cli("simulate", "fixtures/automotive.json", "--keys", str(keys),
                                "--context", "fixtures/contexts/suv-shopper-lyon.json",
                                "--now", "2026-11-23T12:00:00Z", "--visitor", "00112233445566778899aabbccddeeff"))
        tokens.append(answer["token"])
        for token in tokens:
            put("token", f"a=1; mm={token}; mm=x")
            # The first byte picks the version the target seals with: 0 v1, 1 v2.
            version = bytes([0 if token.startswith("v1.") else 1])
            put("token_payload", version + b64url(token.split(".")[2]))
        for extra in [[], ["--campaign", "winter-check"], ["--ttl", "30d"]]:
            link = cli("link", "mint", "--keys", str(keys), "--profile", "51" * 16,
                       "--now", "2026-11-23T12:00:00Z", *extra)
            put("link", link)
            put("link", b64url(link.split(".")[2]))
        for name in ["automotive", "retail", "triggers"]:
            mmb = pathlib.Path(tmp) / f"{name}.mmb"
            cli("compile", f"fixtures/{name}.json", "-o", str(mmb))
            data = mmb.read_bytes()
            put("bundle_load", data)
            id_len = int.from_bytes(data[6:8], "little")
            start = 8 + id_len + 8 + 32
            length = int.from_bytes(data[start:start + 4], "little")
            put("bundle_payload", data[start + 4:start + 4 + length])
            put("bundle_compile", (ROOT / "fixtures" / f"{name}.json").read_bytes())
    for case in json.loads((ROOT / "tests/conformance/jsonlogic/compatible.json").read_text()):
        if isinstance(case, dict):
            put("rule", json.dumps([case["rule"], case.get("data")]))
    for bundle in ["automotive", "retail"]:
        source = json.loads((ROOT / "fixtures" / f"{bundle}.json").read_text())
        for slot in source["slots"].values():
            for candidate in slot.get("candidates", []):
                if "when" in candidate:
                    put("rule", json.dumps([candidate["when"], {"page": {"path": "/models/suv/x5"}}]))
    pages = ROOT / "fixtures" / "pages"
    for page in sorted(pages.glob("*.html"))[:8] if pages.exists() else []:
        put("html", page.read_bytes()[:64 * 1024])
    put("html", '<!doctype html><div data-mm-slot="hero"><p>x</p></div><aside data-mm-slot=sidebar>y</aside>'
                '<div data-mm-slot="hero">again</div><script>var s = "<div data-mm-slot=hero>";</script>')
    agents = (ROOT / "fixtures" / "user-agents")
    for line in (agents / "crawlers.txt").read_text().splitlines()[:40:4]:
        put("user_agent", line)
    for line in (agents / "browsers.tsv").read_text().splitlines()[1:400:40]:
        put("user_agent", json.loads(line.split("\t")[-1]) if line.split("\t")[-1].startswith('"') else line.split("\t")[-1])
    for fields in [
        ["/models/suv/x5", "acme.example", "utm_source=newsletter&utm_medium=email&q=%3Cx%3E",
         "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1", "?1",
         '"iOS"', "https://www.google.com/search?q=suv", "fr-FR,fr;q=0.9", "", "1", "", "Europe/Paris"],
        ["/v1/decide", "", "slots=hero&event=order_completed&channel=app&path=/cart", "Googlebot/2.1", "",
         "", "", "*", "1", "0", "3.2.1", "Mars/Olympus"],
    ]:
        put("request", "\n".join(fields))


if __name__ == "__main__":
    main()
