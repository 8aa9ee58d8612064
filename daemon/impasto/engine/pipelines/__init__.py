"""One module per task (txt2img, img2img, inpaint) on a shared denoising base."""
