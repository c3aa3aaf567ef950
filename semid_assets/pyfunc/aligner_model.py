"""MLflow model-from-code file of a semid aligner version: MLflow runs it to build the model."""

from mlflow.models import set_model

from semid_assets.pyfunc.models import AlignerModel

set_model(AlignerModel())
