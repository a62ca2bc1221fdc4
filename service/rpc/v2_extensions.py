"""Triton's extension messages for digits: model configuration and statistics.

Standard Triton tools (perf_analyzer, model_analyzer) call ModelConfig and ModelStatistics
before they send a single inference; their shapes are Triton's (model_config.proto,
grpc_service.proto), filled with what digits knows.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.generated.inference import grpc_predict_v2_pb2 as pb
from service.rpc.v2_converters import INPUT_NAME, LABEL_OUTPUT, PROBABILITIES_OUTPUT
from service.serving.statistics import Duration, VersionStatistics

__all__ = ["EXTENSIONS", "model_config", "model_statistics"]

# Advertised in ServerMetadata: what the server implements beyond the core protocol.
EXTENSIONS = ("classification", "model_configuration", "statistics")

_PIXELS = 784
_CLASSES = 10


def model_config(
    name: str, platform: str, *, max_batch_size: int, batching_delay_us: int | None
) -> pb.ModelConfig:
    """The digits model as a Triton configuration: dims leave out the batch dimension (the
    model batches up to `max_batch_size` rows); `label` is one INT64 per row, [N] on the wire.

    `batching_delay_us` is None when dynamic batching is off.
    """
    config = pb.ModelConfig(
        name=name, platform=platform, backend=platform, max_batch_size=max_batch_size
    )
    config.input.add(name=INPUT_NAME, data_type=pb.TYPE_UINT8, dims=[_PIXELS])
    config.output.add(name=PROBABILITIES_OUTPUT, data_type=pb.TYPE_FP32, dims=[_CLASSES])
    config.output.add(
        name=LABEL_OUTPUT,
        data_type=pb.TYPE_INT64,
        dims=[1],
        reshape=pb.ModelTensorReshape(shape=[]),
    )
    if batching_delay_us is not None:
        config.dynamic_batching.max_queue_delay_microseconds = batching_delay_us
    return config


def model_statistics(totals: Sequence[VersionStatistics]) -> list[pb.ModelStatistics]:
    """Triton ModelStatistics messages of the given versions' totals."""

    def duration(value: Duration) -> pb.StatisticDuration:
        return pb.StatisticDuration(count=value.count, ns=value.ns)

    return [
        pb.ModelStatistics(
            name=stats.name,
            version=str(stats.version),
            last_inference=stats.last_inference_ms,
            inference_count=stats.inference_count,
            execution_count=stats.execution_count,
            inference_stats=pb.InferStatistics(
                success=duration(stats.success),
                fail=duration(stats.fail),
                queue=duration(stats.queue),
                # Triton counts input and output preparation per execution too, and its tools
                # insist the three counts agree; digits decodes inputs and encodes outputs in
                # the adapters, outside the model, so their time here is 0.
                compute_input=pb.StatisticDuration(count=stats.compute_infer.count),
                compute_infer=duration(stats.compute_infer),
                compute_output=pb.StatisticDuration(count=stats.compute_infer.count),
            ),
        )
        for stats in totals
    ]
