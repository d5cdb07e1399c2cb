"""Run every benchmark in turn (`make bench`); each prints one JSON line."""

from bench import (
    active_learning,
    api_pipeline,
    exports,
    extraction,
    multi_host,
    predict_latency,
    quality,
    train_cli,
)


def main() -> None:
    for module in (extraction, train_cli, predict_latency, api_pipeline, multi_host, quality, exports):
        module.main()
    active_learning.main([])


if __name__ == "__main__":
    main()
