# DO NOT EDIT. Regenerate with `make proto` (scripts/gen_proto.py) from protos/.
