"""The chapter: fastbook's chapter 4 end to end.

baseline   pixel similarity: the ideal 3 and 7, and the distance to them
reproduce  every step of the chapter, checked against the book's figures
beside     some of those steps in a second process, beside the others
report     report.html, report.md and results.json from a reproduction
"""
