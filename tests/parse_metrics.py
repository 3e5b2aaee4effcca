#!/usr/bin/env python3
"""Parses an exposition from stdin with the Python Prometheus client's
parsers (an implementation independent of onprem's encoder) and prints
what it found as JSON: the family count, the sample count and every
sample as [name, labels, value]. Exits non-zero on a parse error.

Usage: parse_metrics.py text|openmetrics < metrics
"""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om


def main():
    fmt = sys.argv[1]
    data = sys.stdin.read()
    parse = parse_om if fmt == "openmetrics" else parse_text
    families = 0
    samples = []
    for fam in parse(data):
        families += 1
        for s in fam.samples:
            v = s.value
            samples.append([s.name, dict(sorted(s.labels.items())), None if math.isnan(v) else v])
    json.dump({"families": families, "samples": samples}, sys.stdout)


if __name__ == "__main__":
    main()
