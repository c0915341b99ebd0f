"""stylefa.data"""
