"""stylefa.nets"""
