"""Inference: using a trained model.

predictor  Predictor: a run folder in, people's images in, digits (or numbers) out
interpret  Interpretation: the confusion matrix, most confused pairs, top losses
serve      the web app: a drawing page and a JSON API
"""
