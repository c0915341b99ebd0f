"""stylefa.project"""
