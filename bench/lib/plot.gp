# The picture of a bench/run: requests per second and p99 latency against connections, for
# nginx and both endpoints on the empty and the full database. Set on the command line:
# data (columns: connections, then rps and p99 ms of nginx, create, verify, create with
# history, verify with history), out (the PNG), subtitle, and store: the store's name, or empty
# to leave it out of the title.
set terminal pngcairo size 1200,520 font ",10"
set output out
on_store = (store eq "") ? "" : " on ".store
set multiplot layout 1,2 title "otp-sidecar".on_store." vs nginx (fixed 200) - ".subtitle
set logscale x 2
set xtics ("1" 1, "8" 8, "32" 32, "128" 128)
set xlabel "connections"
set grid
set key top left

set title "throughput"
set ylabel "requests/s"
set logscale y 10
set yrange [*:*]
plot data using 1:2 with linespoints lw 2 title "nginx", \
     data using 1:4 with linespoints lw 2 title "create", \
     data using 1:6 with linespoints lw 2 title "verify", \
     data using 1:8 with linespoints lw 2 dt 2 title "create, history", \
     data using 1:10 with linespoints lw 2 dt 2 title "verify, history"

set title "p99 latency"
set ylabel "ms"
set logscale y 10
set yrange [*:*]
plot data using 1:3 with linespoints lw 2 title "nginx", \
     data using 1:5 with linespoints lw 2 title "create", \
     data using 1:7 with linespoints lw 2 title "verify", \
     data using 1:9 with linespoints lw 2 dt 2 title "create, history", \
     data using 1:11 with linespoints lw 2 dt 2 title "verify, history"
unset multiplot
