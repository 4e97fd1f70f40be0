/* Placeholder so that a module with no sources yet still builds. */
extern int herald_empty_translation_unit;
