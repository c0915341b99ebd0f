"""stylefa.study"""
