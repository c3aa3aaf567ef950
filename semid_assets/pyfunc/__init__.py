"""What external users get from ``mlflow.pyfunc.load_model``: semid's tokenizers and aligners as
MLflow *models from code*.

A registered version holds the plain ``.npz`` of the fitted object (arrays and JSON, read
with ``allow_pickle=False``) and one of the code files beside this module
(``tokenizer_model.py``, ``aligner_model.py``), which MLflow runs to build the model: no
pickled Python object is stored. semid's own loaders (``semid_assets.registry``) never use
these: they read the ``.npz`` directly.
"""
