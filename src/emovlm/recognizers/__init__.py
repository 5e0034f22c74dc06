"""Recognizers: strategies that turn a Sample into a Prediction."""
