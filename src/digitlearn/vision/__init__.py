"""Vision: images from anywhere, made into the inputs a digit model takes.

    images    opening any image safely: the format allow-list, pixel and decode budgets, EXIF, gray
    prepare   people's images prepared the MNIST way (ink found, centred, 20 px in a 28 px frame)
    segment   a number split into its digits, left to right

Vision imports nothing above it: datasets, models and training all use it.
"""
