"""Benchmark: DMARC aggregate report parsing.

Run with `make bench` or:
    .venv/bin/python -m pytest -q -s tests/bench/test_dmarc_bench.py

1. Time per report over the whole corpus (../shared/corpus/dmarc: XML, .xml.gz, .zip and report
   emails), each file parsed REPEAT times, the way `flask dmarc parse` reads it.
2. A generated 50 MB report (about 120,000 records, every one a different source), as plain XML and
   gzipped, parsed in a fresh subprocess that records its peak RSS (resource.getrusage ru_maxrss)
   after the imports and after the parse: the difference is what the report itself cost. Records
   are streamed and dropped, so it stays flat whatever the report's size.
"""
import csv
import gzip
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.config import ROOT
from app.deliverability.dmarc.parse import DmarcError
from app.deliverability.dmarc.parse import parse

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "dmarc"
REPEAT = 50
TARGET_BYTES = 50 * 1024 * 1024

# ru_maxrss is the process's peak, imports included (the app package imports Flask and every view);
# VmHWM, reset through clear_refs after the imports, is the peak during the parse alone.
MEASURE = """
import json, resource, sys, time
from app.deliverability.dmarc.parse import parse

def hwm():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
resident = rss()
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")
started = time.perf_counter()
report = parse(sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({"records": report.records, "messages": report.total_messages, "seconds": seconds,
                  "rss_before_kb": before, "rss_after_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "resident_kb": resident, "parse_peak_kb": hwm()}))
"""


def test_time_per_report_over_the_corpus():
    if not (CORPUS / "expected.csv").is_file():
        pytest.skip(f"DMARC corpus not found at {CORPUS} (../shared is absent)")
    with open(CORPUS / "expected.csv", newline="", encoding="utf-8") as handle:
        files = [CORPUS / row["file"] for row in csv.DictReader(handle)]
    per_file = {}
    for path in files:
        timings = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            try:
                parse(path)
            except DmarcError:
                pass  # the refused ones (empty, not a report) are timed too
            timings.append(time.perf_counter() - started)
        per_file[path.name] = statistics.median(timings)
    values = sorted(per_file.values())
    print(f"\n{len(files)} corpus files x {REPEAT}: median {statistics.median(values) * 1000:.3f} ms a report, "
          f"mean {statistics.mean(values) * 1000:.3f} ms, slowest {values[-1] * 1000:.3f} ms "
          f"({max(per_file, key=per_file.get)})")


def _write_big_report(path):
    record = ("<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>"
              "<disposition>none</disposition><dkim>{dkim}</dkim><spf>pass</spf></policy_evaluated></row>"
              "<identifiers><header_from>example.com</header_from><envelope_from>bounce.example.com"
              "</envelope_from></identifiers><auth_results><dkim><domain>example.com</domain>"
              "<selector>loft{sel}</selector><result>{dkim}</result></dkim><spf><domain>bounce.example.com"
              "</domain><scope>mfrom</scope><result>pass</result></spf></auth_results></record>\n")
    records = messages = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n<feedback><report_metadata><org_name>bench.example.net'
                  '</org_name><email>noreply@bench.example.net</email><report_id>bench-50mb</report_id><date_range>'
                  '<begin>1700000000</begin><end>1700086399</end></date_range></report_metadata><policy_published>'
                  '<domain>example.com</domain><p>none</p></policy_published>\n')
        while out.tell() < TARGET_BYTES:
            count = records % 97 + 1
            ip = f"2001:db8:{records // 65536:x}:{records % 65536:x}::1" if records % 3 else \
                f"198.51.100.{records % 254 + 1}"
            out.write(record.format(ip=ip, count=count, dkim="pass" if records % 5 else "fail", sel=records % 7))
            records += 1
            messages += count
        out.write("</feedback>\n")
    return records, messages


def _measure(path):
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], cwd=str(ROOT), capture_output=True,
                          text=True, timeout=600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_50mb_report_streams_in_bounded_memory(tmp_path):
    plain = tmp_path / "big.xml"
    records, messages = _write_big_report(plain)
    packed = tmp_path / "big.xml.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes(), compresslevel=6))
    for path in (plain, packed):
        figures = _measure(path)
        assert (figures["records"], figures["messages"]) == (records, messages)
        grew = (figures["parse_peak_kb"] - figures["resident_kb"]) / 1024
        print(f"\n{path.name}: {path.stat().st_size / 1048576:.1f} MB, {records:,} records, "
              f"{figures['seconds']:.2f} s ({records / figures['seconds']:,.0f} records/s); ru_maxrss "
              f"{figures['rss_before_kb'] / 1024:.1f} MB after imports, {figures['rss_after_kb'] / 1024:.1f} MB after "
              f"the parse; resident {figures['resident_kb'] / 1024:.1f} MB before it, peak during it "
              f"{figures['parse_peak_kb'] / 1024:.1f} MB (+{grew:.1f} MB)")
        assert grew < 40, "the parse should stream, not hold the report"
