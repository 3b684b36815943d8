"""dnahnet.analysis"""
