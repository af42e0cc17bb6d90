-- cog.yaml concurrency.max of each version (version.created events recorded before it carry none: 1).
ALTER TABLE __SCHEMA__.versions ADD COLUMN concurrency_max integer NOT NULL DEFAULT 1;
