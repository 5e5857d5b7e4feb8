"""The models tomobile exports, as `ModelBundle`s of `Exportable` parts (exportable.py).

registry.py: the built-in names (`tomobile models`): zoo.py (Hugging Face vision and text encoders,
random seeded or packaged weights), video_zoo.py (the trained video-dit-tiny), video_random.py
(video DiTs at other widths), sd_unet.py (Stable Diffusion UNets). hf_models.py patches Hugging
Face encoders with a merge method (`apply_merge`), hf_folder.py / hf_wrappers.py /
sentence_modules.py read local folders, siglip_head.py spells SigLIP's pool head for export.
video_dit.py, video_parts.py, text_context.py and clips.py are the video model, its split parts,
its caption encoder and the procedural clips it was trained on.
"""
