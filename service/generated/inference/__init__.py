"""Generated Open Inference Protocol (KServe V2) stubs: run scripts/gen_proto.sh, never edit."""
