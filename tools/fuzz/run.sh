#!/bin/sh
# Runs Go fuzz targets one after another (make fuzz runs it):
#   run.sh TIME [go test flags...] -- PKG:TARGET...
# Each target runs for TIME. The inputs the fuzzer kept in Go's cache are
# then copied into the package's testdata/fuzz/TARGET/, so that the corpus
# is kept in the tree (review and commit them); a failing input is written
# there by go test itself, and stops the run.
#
# A run that ends in a bare "context deadline exceeded" without writing a
# failing input is not a finding: it is a race in Go's fuzzing coordinator
# at the end of -fuzztime (golang/go#75804), seen here on
# a loaded machine. It is reported and the run goes on.
set -eu

time=$1
shift
flags=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	flags="$flags $1"
	shift
done
[ $# -gt 0 ] && shift
go=${GO:-go}
cache=$($go env GOCACHE)/fuzz
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=""
for t in "$@"; do
	pkg=${t%%:*}
	name=${t##*:}
	dir=$pkg/testdata/fuzz/$name
	before=$(ls "$dir" 2>/dev/null | wc -l)
	echo "== $name ($pkg) for $time"
	# shellcheck disable=SC2086 # flags are words
	if $go test -run '^$' -fuzz "^$name\$" -fuzztime "$time" $flags "$pkg" 2>&1 | tee "$log" | grep -v '^time=' ; then :; fi
	after=$(ls "$dir" 2>/dev/null | wc -l)
	if grep -q '^FAIL' "$log"; then
		if [ "$after" = "$before" ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input' "$log"; then
			echo "== $name: ended in Go's fuzztime race (golang/go#75804), no failing input: not a finding"
		else
			failed="$failed $name"
			echo "== $name FAILED: its failing input is in $dir" >&2
			break
		fi
	fi
	found=$cache/$($go list "$pkg")/$name
	if [ -d "$found" ]; then
		mkdir -p "$dir"
		cp -n "$found"/* "$dir"/ 2>/dev/null || true
	fi
done
[ -z "$failed" ]
