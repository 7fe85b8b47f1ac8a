"""Plots: the figures of training and of the chapter, and showing images in notebooks.

charts    loss and metric panels, image grids, the chapter's figures, saving figures
figures   show_image and show_images, which import matplotlib only when called
"""
