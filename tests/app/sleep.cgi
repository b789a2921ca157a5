#!/bin/sh
# The CGI script of the reload tests and benchmarks: answers "slept MS ms in
# PID" (PID: the fcgiwrap child that ran it) after sleeping the ms of the
# query.
ms=${QUERY_STRING#ms=}
case $ms in ''|*[!0-9]*) ms=0 ;; esac
sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
printf 'Content-Type: text/plain\r\n\r\nslept %s ms in %s\n' "$ms" "$PPID"
