# herd's developer entry points. `make run` needs nothing but Go; `make test`
# installs what the tests need (Debian packages as root, npm modules).
#
#   make run        herd with embedded Redis and S3, its state in .herd/
#   make dev        the same against real Redis and MinIO (localdev/up)
#   make test       vet and test everything against real Redis and MinIO
#   make e2e        a QEMU machine provisions itself through herd (root; minutes)
#   make bench      benchmarks, BENCHTIME=1s per benchmark, then bench-boot
#   make bench-boot boot storm, herd vs dnsmasq, by herd-sim (root; BOOTBENCH=… flags)
#   make fuzz       every fuzz target for FUZZTIME=10s
#   make build      every command into bin/; make lambda: Lambda bundles into out/lambda/
#   make deps       redis-server, chromium, npm modules, htmx into frontend/static/vendor
#   make frontend   only the npm modules and htmx
#   make generate   templ's Go code from frontend/**/*.templ (committed)
#   make clean      remove build outputs (not .herd/ nor localdev/.state/)
#
# ARGS=… passes flags to the all-in-one in run and dev; TESTFLAGS=… to go
# test; PKGS=… limits test and bench to some packages (default ./...).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go
ENV := localdev/.state/env
BENCHTIME ?= 1s
FUZZTIME ?= 10s
TESTFLAGS ?=
PKGS ?= ./...
ARGS ?=
TEMPL := github.com/a-h/templ/cmd/templ@v0.3.1100
HTMX := frontend/static/vendor/htmx.min.js
HTMX_NPM := frontend/node_modules/htmx.org/dist/htmx.min.js
# Every functions/cmd/NAME but the herd-* servers is a Lambda function.
LAMBDAS := $(filter-out herd-%,$(notdir $(wildcard functions/cmd/*)))

# servers is the start of a recipe that needs Redis and MinIO: it starts
# them unless they run already, stops them at the end if it started them
# (also on failure, keeping the exit status), and exports localdev/.state/env.
servers := started=; localdev/up --check || { localdev/up; started=1; }; \
	if [ -n "$$started" ]; then trap 'localdev/down >/dev/null' EXIT; fi; \
	set -a; . $(ENV); set +a;

.PHONY: help run dev deps frontend frontend-optional generate test e2e bench bench-boot fuzz build lambda clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

run: frontend-optional
	$(GO) run ./localdev/cmd/herd-allinone $(ARGS)

dev: frontend-optional
	localdev/up
	set -a; . $(ENV); set +a; \
	exec $(GO) run ./localdev/cmd/herd-allinone \
		-redis-url "$$HERD_REDIS_URL" -s3-endpoint "$$HERD_S3_ENDPOINT" \
		-s3-access-key "$$HERD_S3_ACCESS_KEY" -s3-secret-key "$$HERD_S3_SECRET_KEY" \
		-s3-bucket "$$HERD_S3_BUCKET" $(ARGS)

deps:
	localdev/install-packages redis-server:redis-server chromium:/usr/bin/chromium npm:npm \
		tftp-hpa:/usr/bin/tftp atftp:/usr/bin/atftp curl:curl ipxe:/usr/lib/ipxe/undionly.kpxe \
		busybox:busybox iproute2:ip debootstrap:debootstrap tar:tar attr:getfattr libcap2-bin:setcap rsync:rsync \
		openipmi:ipmi_sim ipmitool:ipmitool \
		qemu-system-x86:qemu-system-x86_64 qemu-utils:qemu-img gdisk:sgdisk fdisk:sfdisk mdadm:mdadm \
		lvm2:lvm xfsprogs:mkfs.xfs e2fsprogs:mkfs.ext4 dosfstools:mkfs.vfat kmod:kmod util-linux:lsblk \
		efibootmgr:efibootmgr extlinux:extlinux syslinux-common:/usr/lib/syslinux/mbr/gptmbr.bin \
		openssh-server:/usr/sbin/sshd openssh-client:ssh ipxe-qemu:/usr/lib/ipxe/qemu/pxe-e1000.rom ovmf:/usr/share/OVMF/OVMF_CODE_4M.fd
	@$(MAKE) --no-print-directory frontend

frontend: $(HTMX)

$(HTMX): $(HTMX_NPM)
	mkdir -p $(@D)
	cp $< $@

$(HTMX_NPM): frontend/package.json $(wildcard frontend/package-lock.json)
	cd frontend && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
	touch $@

# run and dev work without npm: the pages then go without htmx's extras.
frontend-optional:
	@if ! command -v npm >/dev/null; then \
		echo "make: npm not found; frontend assets skipped (make deps installs npm)" >&2; \
	elif ! $(MAKE) --no-print-directory frontend; then \
		echo "make: frontend assets not built (npm failed); going on without them" >&2; \
	fi

generate:
	cd frontend && $(GO) run $(TEMPL) generate

# A vet failure fails the target, after the tests ran: CI reads go test's
# closing lines.
test: deps
	@$(servers) \
	vet=0; $(GO) vet $(PKGS) || vet=$$?; \
	$(GO) test -count=1 $(TESTFLAGS) $(PKGS); \
	exit $$vet

# Issue 7 end to end: the edge in a network namespace, a QEMU machine on
# its bridge, discovered, assigned and provisioned three times (BIOS), then
# a second machine under UEFI (OVMF). make test runs it too (it is a test
# of ./localdev/e2e); this runs it alone, verbose.
e2e: deps
	@$(servers) \
	$(GO) test -count=1 -v -timeout 15m $(TESTFLAGS) ./localdev/e2e/

bench:
	@$(servers) \
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(TESTFLAGS) $(PKGS)
	@$(MAKE) --no-print-directory bench-boot

# The boot storm of issue 3: herd (built from this tree, on localdev's Redis
# and MinIO) and Debian's dnsmasq serve the same simulated rack in turn;
# herd-sim prints both side by side. dnsmasq-base is dnsmasq without the
# system service, which would take ports 53 and 67 for itself.
bench-boot:
	localdev/install-packages dnsmasq-base:dnsmasq ipxe:/usr/lib/ipxe/undionly.kpxe
	@$(servers) \
	$(GO) run ./edge/cmd/herd-sim bench $(BOOTBENCH)

fuzz:
	@$(servers) \
	for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v -e '/\.' -e '/node_modules/' -e '/testdata/' | xargs -r -n1 dirname | sort -u); do \
		for target in $$($(GO) test -list '^Fuzz' "$$dir" | grep '^Fuzz'); do \
			echo "fuzz $$dir $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) "$$dir"; \
		done; \
	done

build: frontend-optional
	mkdir -p bin
	$(GO) build -o bin/ $$($(GO) list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./... | grep -v '/bootenv/cmd/')
	# bootenv runs as /init of an initramfs with no libc: it must be static.
	# herd bootenv build finds it beside bin/herd.
	CGO_ENABLED=0 $(GO) build -o bin/ ./bootenv/cmd/...

# Each function as the bootstrap binary of provided.al2023, where
# infra/aws/template.yaml's CodeUri looks for it.
lambda: frontend-optional
	@for fn in $(LAMBDAS); do \
		echo "lambda: functions/cmd/$$fn -> out/lambda/$$fn/bootstrap"; \
		GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath \
			-ldflags='-s -w' -o out/lambda/$$fn/bootstrap ./functions/cmd/$$fn; \
	done

clean:
	rm -rf bin out frontend/static/vendor
