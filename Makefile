# Vigil. The targets here are the ones CI runs (.ci/run), so a green
# `make lint test` on your machine is a green CI.

GO       ?= go
BIN      ?= bin/vigil
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/vigilarc/vigil/appliance.Version=$(VERSION)
STATICCHECK_VERSION ?= v0.8.2
GOBIN    := $(shell $(GO) env GOPATH)/bin

export GOFLAGS ?= -buildvcs=false

.PHONY: all build run test soak bench chaos chaos-powercut fuzz lint tools deps clean deb deb-test image image-test upgrade-test

all: lint test build

## build: compile bin/vigil
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

## run: start a three-node cluster on loopback with simulated devices as a
## live demo (Ctrl-C stops it)
run: build
	./$(BIN) devcluster --demo

## test: every test, with the race detector (the command CI runs): the
## product's module, then the tooling's (tools/: the bench, the chaos
## harness, the system tests, the browser tests and the notification tests,
## which build mailpit from its Go module, in a module of their own so that
## their dependencies stay out of the product's go.mod)
test:
	$(GO) test -race -count=1 -timeout 30m ./...
	cd tools && $(GO) test -race -count=1 -timeout 30m ./...

## soak: long tests (200,000 commands through a three-node cluster); not in CI
soak:
	VIGIL_SOAK=1 $(GO) test -count=1 -timeout 30m -run 'TestSoak' -v ./...
	cd tools && VIGIL_SOAK=1 $(GO) test -count=1 -timeout 30m -run 'TestSoak' -v ./...

## upgrade-test: a rolling upgrade under device load from the previous
## commit's vigil (FROM=rev, default HEAD~1; needs the git history) to this
## tree's: three processes, each follower then the leader stopped with
## SIGTERM and started on the new binary; fails on a lost alarm or nodes
## that disagree, and logs each step's longest time without a PUBACK
## (docs/install.md, "Upgrading")
upgrade-test:
	cd tools && VIGIL_UPGRADE_TEST=1 $(if $(FROM),VIGIL_UPGRADE_FROM=$(FROM)) $(GO) test -count=1 -timeout 15m -run 'TestUpgrade_' -v ./systemtest/

## bench: Vigil side by side with Mosquitto and etcd, on loopback
## (docs/performance.md); installs mosquitto and etcd-server from Debian's
## packages when they are missing. QUICK=1 for a short run; ONLY=cluster,
## ONLY=gateway or a comma list of console, ingest, failover, grow, conns, tls
## for some parts; ONLY=hostile for the hostile input (issue 16's cases, run
## only when named); PPROF=dir saves the nodes' profiles
bench: build
	@sh tools/bench/peers.sh
	cd tools && $(GO) build -o ../bin/bench ./bench
	./bin/bench $(if $(QUICK),-quick) $(if $(ONLY),-only $(ONLY)) $(if $(PPROF),-pprof $(PPROF)) -vigil ./$(BIN)

## chaos: fault injection, as root: three nodes in their own network
## namespaces under device load, each on a disk that can lose power (a FUSE
## mount, tools/chaos/powerfs: needs /dev/fuse), a seeded schedule of
## faults (kill, pause, isolate the leader, split 1|2, wipe and replace,
## power cut of one node or of all three), then the check; exits non-zero
## on a loss, a duplicate, a divergence or another broken promise. SEED=n
## replays a run, FAULTS=200 is a long one, KINDS=powercut,powercut-all
## draws from those kinds only (docs/reliability.md). Installs iproute2
## and nftables when they are missing.
FAULTS ?= 10
chaos: build
	@command -v ip >/dev/null && command -v nft >/dev/null || \
	{ $(DEPS_SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(DEPS_SUDO) apt-get install -y -qq iproute2 nftables >/dev/null; }
	cd tools && $(GO) build -o ../bin/chaos ./chaos/cmd/chaos
	./bin/chaos -vigil ./$(BIN) -faults $(FAULTS) $(if $(SEED),-seed $(SEED)) $(if $(KINDS),-kinds $(KINDS))

## image: the container image (images/Dockerfile): a static vigil FROM
## scratch with the build host's CA certificates and a non-root user
## (10001), tagged $(IMAGE):$(VERSION) and $(IMAGE):latest. Nothing is
## pulled: the build context (bin/image) holds everything the image has
IMAGE      ?= vigil
IMAGE_CTX  := bin/image
IMAGE_UID  := 10001
CA_BUNDLE  ?= /etc/ssl/certs/ca-certificates.crt
image:
	@command -v docker >/dev/null || { echo "make image: docker is missing: apt-get install docker.io"; exit 1; }
	@test -r $(CA_BUNDLE) || { echo "make image: $(CA_BUNDLE) is missing: apt-get install ca-certificates"; exit 1; }
	rm -rf $(IMAGE_CTX)
	mkdir -p $(IMAGE_CTX)/rootfs/usr/bin $(IMAGE_CTX)/rootfs/etc/ssl/certs $(IMAGE_CTX)/rootfs/tmp $(IMAGE_CTX)/data
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(IMAGE_CTX)/rootfs/usr/bin/vigil .
	cp $(CA_BUNDLE) $(IMAGE_CTX)/rootfs/etc/ssl/certs/ca-certificates.crt
	printf 'root:x:0:0:root:/:/sbin/nologin\nvigil:x:$(IMAGE_UID):$(IMAGE_UID):Vigil:/var/lib/vigil:/sbin/nologin\n' >$(IMAGE_CTX)/rootfs/etc/passwd
	printf 'root:x:0:\nvigil:x:$(IMAGE_UID):\n' >$(IMAGE_CTX)/rootfs/etc/group
	chmod 1777 $(IMAGE_CTX)/rootfs/tmp
	chmod 0700 $(IMAGE_CTX)/data
	docker build --pull=false --build-arg VERSION=$(VERSION) -f images/Dockerfile \
		-t $(IMAGE):$(VERSION) -t $(IMAGE):latest $(IMAGE_CTX)

## image-test: the container system test (tools/imagetest), as root or a
## member of the docker group: builds the image, forms the three-node
## compose cluster from it (images/compose.yaml) as docs/install.md says,
## and has devices publish alarms over MQTT over TLS while the leader's
## container is killed and started again; fails on a lost or doubled
## alarm or nodes that disagree. About two minutes
image-test: image
	cd tools && VIGIL_IMAGE=$(IMAGE):$(VERSION) $(GO) test -count=1 -timeout 10m -v -run 'TestImage' ./imagetest/

## chaos-powercut: a run of 50 faults of every kind, power cuts among them
## (two in seven): about 15 minutes. SEED=n replays one.
chaos-powercut:
	$(MAKE) chaos FAULTS=50

## fuzz: every decoder's fuzz target, one after another, FUZZTIME each
## (default 10m; make fuzz FUZZTIME=30s): device payloads, strict JSON (the
## API's bodies), the cluster's envelope, command record and snapshot
## restore, the state machine's commands, the config file and join tokens.
## New inputs the fuzzer keeps are copied into the package's
## testdata/fuzz/<target>/ for review and commit; a failure stops the run
## with its input written there (tools/fuzz/run.sh). Not in CI; the
## corpora run in `make test`.
## FUZZFLAGS=-parallel=1 for one worker (default: one per CPU)
FUZZTIME ?= 10m
FUZZFLAGS ?=
FUZZ_TARGETS := ./broker:FuzzDecode ./internal/strictjson:FuzzUnmarshal \
	./cluster:FuzzDecodeEnvelope ./cluster:FuzzDecodeCmdRecord ./cluster:FuzzRestore \
	./appliance/monitoring:FuzzApply ./appliance:FuzzLoadConfig ./provisioning:FuzzParseJoinToken
fuzz:
	@GO=$(GO) sh tools/fuzz/run.sh $(FUZZTIME) $(FUZZFLAGS) -- $(FUZZ_TARGETS)

## deb: the Debian package, dist/vigil_<version>_amd64.deb (tools/pkg/deb,
## with nFPM): a static binary, the hardened unit images/vigil.service, the
## default configuration images/deb/vigil.yaml as a conffile, and the
## maintainer scripts images/deb/ (docs/install.md, "Debian package"). The
## version comes from git describe; untagged builds are ordered by their
## count of commits.
deb:
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/deb/vigil .
	cd tools && $(GO) build -o ../bin/deb/mkdeb ./pkg/deb
	./bin/deb/mkdeb $(MKDEB_FLAGS)
MKDEB_FLAGS = -vigil bin/deb/vigil -version $(VERSION) -out $(CURDIR)/dist \
	-commits $$(git rev-list --count HEAD 2>/dev/null || echo 1)

## deb-test: as root, the package installed with dpkg in a Debian bookworm
## made with debootstrap, in a chroot (tools/pkgtest): the user, the data
## directory, systemd-analyze verify of the unit, a node running as the
## package's user with its configuration, upgrade, remove and purge. The
## userland is made once from this machine's apt mirror (about a minute)
## and kept in DEB_ROOTFS_CACHE. Installs debootstrap when it is missing.
DEB_ROOTFS_CACHE ?= /var/cache/vigil-test/bookworm
deb-test: deb
	@command -v debootstrap >/dev/null || \
	{ $(DEPS_SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(DEPS_SUDO) apt-get install -y -qq debootstrap >/dev/null; }
	deb=$$(./bin/deb/mkdeb $(MKDEB_FLAGS) -name) && \
	cd tools && VIGIL_DEB=$$deb VIGIL_DEB_ROOTFS_CACHE=$(DEB_ROOTFS_CACHE) \
		$(GO) test -count=1 -timeout 15m -v -run 'TestDebianPackage' ./pkgtest

## lint: gofmt, go vet and staticcheck
lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...
	cd tools && $(GO) vet ./... && $(GOBIN)/staticcheck ./...

## deps: install the system packages the tests use (mosquitto_pub, _sub and _rr
## for broker/mosquitto_test.go; chromium for the console's browser tests, and
## libnss3-tools' certutil, which installs the cluster CA in the test browser,
## tools/browsertest; poppler-utils' pdftoppm and pdftotext for the post-incident
## report's PDF test, ui/incident; docker-compose, unless docker has the compose plugin,
## for tools/imagetest); does nothing when they are there
DEPS_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
deps:
	@command -v mosquitto_pub >/dev/null && command -v mosquitto_sub >/dev/null && command -v mosquitto_rr >/dev/null || \
	{ $(DEPS_SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(DEPS_SUDO) apt-get install -y -qq mosquitto-clients >/dev/null; }
	@command -v chromium >/dev/null || \
	{ $(DEPS_SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(DEPS_SUDO) apt-get install -y -qq chromium >/dev/null; }
	@command -v certutil >/dev/null || \
	{ $(DEPS_SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(DEPS_SUDO) apt-get install -y -qq libnss3-tools >/dev/null; }
	@command -v pdftoppm >/dev/null && command -v pdftotext >/dev/null || \
	{ $(DEPS_SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(DEPS_SUDO) apt-get install -y -qq poppler-utils >/dev/null; }
	@docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || \
	{ $(DEPS_SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(DEPS_SUDO) apt-get install -y -qq docker-compose >/dev/null; }

## tools: install the linters the project uses
tools:
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

clean:
	rm -rf bin dist
