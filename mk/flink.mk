# Portable streaming runners, cached in .cache/ (gitignored).
#
#   make flink   Beam's Flink job server jar, fetched by its Maven coordinates
#                org.apache.beam:beam-runners-flink-$(FLINK_VERSION)-job-server:<beam version>
#                into .cache/flink/; prints the jar path.
#   make prism   Beam's Prism runner (a Go program) built with `go install` into
#                .cache/prism/<beam version>/prism; prints the binary path.
#
# Both follow the apache-beam version installed in the venv (the SDK and the runner must match);
# override with BEAM_VERSION=…. Both are quick when the file is already there.

FLINK_VERSION ?= 1.20
FLINK_CACHE := .cache/flink
PRISM_CACHE := .cache/prism
BEAM_VERSION_OF_VENV = $$($(PY) -c 'from importlib.metadata import version; print(version("apache-beam"))')

.PHONY: flink prism

flink: | $(STAMP)
	@set -e; \
	beam=$${BEAM_VERSION:-$(BEAM_VERSION_OF_VENV)}; \
	coords=org.apache.beam:beam-runners-flink-$(FLINK_VERSION)-job-server:$$beam; \
	jar=$(FLINK_CACHE)/beam-runners-flink-$(FLINK_VERSION)-job-server-$$beam.jar; \
	if [ ! -s "$$jar" ]; then \
	  echo "fetching $$coords" >&2; \
	  mkdir -p $(FLINK_CACHE); \
	  mvn -B -U -Dstyle.color=never dependency:copy -Dartifact=$$coords \
	    -DoutputDirectory=$(FLINK_CACHE) > $(FLINK_CACHE)/mvn.log 2>&1 || { \
	    grep -m1 -o 'Could not find artifact.*' $(FLINK_CACHE)/mvn.log >&2 || tail -20 $(FLINK_CACHE)/mvn.log >&2; \
	    echo "make flink: the registry did not serve $$coords." >&2; \
	    echo "The job server must be the same Beam version as apache-beam ($$beam): try" >&2; \
	    echo "FLINK_VERSION=… (another Flink this Beam supports) or BEAM_VERSION=… with a" >&2; \
	    echo "matching apache-beam pin. For local streaming runs, make prism builds Beam's" >&2; \
	    echo "portable Prism runner instead." >&2; \
	    exit 1; }; \
	fi; \
	echo "$(CURDIR)/$$jar"

prism: | $(STAMP)
	@set -e; \
	beam=$${BEAM_VERSION:-$(BEAM_VERSION_OF_VENV)}; \
	bin=$(PRISM_CACHE)/$$beam/prism; \
	if [ ! -x "$$bin" ]; then \
	  echo "building Beam's Prism runner $$beam with go install" >&2; \
	  mkdir -p $(PRISM_CACHE)/$$beam; \
	  GOBIN="$(CURDIR)/$(PRISM_CACHE)/$$beam" go install \
	    github.com/apache/beam/sdks/v2/go/cmd/prism@v$$beam >&2; \
	fi; \
	echo "$(CURDIR)/$$bin"
