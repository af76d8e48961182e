#!/usr/bin/env bash
# bench_plot.sh RESULT.json OUT.png — plots the server's RSS against joined
# connections from the "rss_curve" of an sbload connections RESULT (P1), with
# the 1 KiB-per-connection target line from the first point. Needs gnuplot.
set -euo pipefail
in=$1; png=$2
dat=$(mktemp); trap 'rm -f "$dat"' EXIT
python3 - "$in" > "$dat" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for c, kb in r.get("rss_curve", []):
    print(c, kb / 1024.0)
PY
[ -s "$dat" ] || { echo "bench_plot: no rss_curve in $in" >&2; exit 1; }
read -r c0 m0 < "$dat"
title=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"{r['conns']:,} connections, {len(r.get('rss_curve',[]))} samples\")" "$in")
gnuplot <<GP
set terminal pngcairo size 900,540 noenhanced font ",11"
set output "$png"
set title "Switchboard server RSS (all processes) vs joined idle connections: $title"
set xlabel "joined connections"
set ylabel "RSS (MiB)"
set key left top
set grid
set format x "%.0s%c"
plot "$dat" using 1:2 with linespoints pt 7 ps 0.6 lw 2 title "server RSS", \
     $m0 + (x - $c0) * 1024 / 1048576.0 with lines dt 2 lw 2 title "target slope: 1 KiB per connection"
GP
echo "$png"
