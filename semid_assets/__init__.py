"""semid: semantic IDs for recommender catalogues, as Dagster assets."""

import os

# Everything semid writes lives under SEMID_HOME; MLflow's usage telemetry would write an
# installation id under ~/.config and call out to the network. Opt out unless the user chose.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
