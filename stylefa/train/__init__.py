"""stylefa.train"""
