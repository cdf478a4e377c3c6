"""cpp_ext"""
