"""MLflow model-from-code file of a semid tokenizer version: MLflow runs it to build the model."""

from mlflow.models import set_model

from semid_assets.pyfunc.models import TokenizerModel

set_model(TokenizerModel())
