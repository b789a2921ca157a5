<?php
// The PHP page of the reload tests and benchmarks: answers "slept MS ms in
// PID" after sleeping the ms of the query (at most 60 s).
$ms = min(60000, max(0, (int) ($_GET["ms"] ?? 0)));
// A signal cuts usleep short: sleep until the time is really up.
$until = microtime(true) + $ms / 1000;
while (($left = $until - microtime(true)) > 0)
    usleep((int) ($left * 1e6));
header("Content-Type: text/plain");
echo "slept $ms ms in ", getmypid(), "\n";
