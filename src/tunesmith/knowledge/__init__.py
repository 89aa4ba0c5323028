"""Knowledge bases: documents -> chunks -> vectors, searched exactly; what retrieval-aware training reads."""
