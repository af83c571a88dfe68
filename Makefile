# Thin aliases for ./dev (which works without make on a fresh machine).
.PHONY: demo test lint bench setup
demo:
	./dev demo
test:
	./dev test
lint:
	./dev lint
bench:
	./dev bench
setup:
	./dev setup
