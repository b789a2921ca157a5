#!/usr/bin/perl
# sleep-app.pl: a FastCGI application in Perl (FCGI, Debian's libfcgi-perl)
# for the tests and benchmarks of spawn-fcgi's supervisor.
#
# It serves the listening socket on fd 0, as spawn-fcgi passes it.  Every
# request is answered with "slept MS ms in PID\n" after sleeping the
# milliseconds of the query parameter ms (0 without it, at most 60000).
#
# Stop signal: SIGUSR1 (or SIGTERM), the usual convention of Perl FCGI
# scripts: the request being served is finished, then the script exits 0;
# while waiting for a connection it exits at once.
use strict;
use warnings;
use FCGI;
use Time::HiRes qw(time sleep);

my $stop = 0;
$SIG{USR1} = $SIG{TERM} = sub { $stop = 1 };

# FAIL_ACCEPT_ON_INTR: a signal ends a blocked accept instead of being
# retried, so that the loop sees $stop.
my $request = FCGI::Request(\*STDIN, \*STDOUT, \*STDERR, \%ENV, 0,
                            FCGI::FAIL_ACCEPT_ON_INTR());

while (!$stop && $request->Accept() >= 0) {
    my ($ms) = ($ENV{QUERY_STRING} // '') =~ /(?:^|&)ms=(\d+)/;
    $ms = 0 unless defined $ms;
    $ms = 60000 if $ms > 60000;
    # A signal cuts a sleep short: sleep until the time is really up.
    my $until = time + $ms / 1000;
    while ((my $left = $until - time) > 0) {
        sleep $left;
    }
    print "Content-Type: text/plain\r\n\r\nslept $ms ms in $$\n";
    $request->Finish();
}
exit 0;
