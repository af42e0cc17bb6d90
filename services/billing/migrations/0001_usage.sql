-- Facts of prediction.created that a usage record needs (filled from the scheduler's events).
CREATE TABLE __SCHEMA__.predictions (
    prediction_id  text PRIMARY KEY,
    account        text NOT NULL,
    model          text NOT NULL,
    version        text NOT NULL,
    hardware       text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Projection of usage.recorded: what each finished prediction bills.
CREATE TABLE __SCHEMA__.usage (
    prediction_id  text PRIMARY KEY,
    account        text NOT NULL,
    hardware       text NOT NULL,
    predict_time   double precision NOT NULL,
    recorded_at    timestamptz NOT NULL
);

CREATE INDEX usage_account_hardware ON __SCHEMA__.usage (account, hardware);
