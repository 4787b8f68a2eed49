// The images uploaded to the device (Storage page, GET /api/v1/images) a container or a VM can be made from.
import type { FieldHelpers } from "../../components/form-fields";
import type { ImportedImage } from "../../images";

export function ImportedImagePicker({ field, images, value, onChange, f }: { field: string; images: ImportedImage[]; value: string; onChange: (sha256: string) => void; f: FieldHelpers }) {
  const id = f.domId(field);
  return (
    <div class="field">
      <label for={id}>Uploaded image</label>
      <p class="field-hint" id={`${id}-hint`}>
        Images uploaded on the Storage page. The device has them: the app starts without a network.
      </p>
      <select {...f.props(field, true)} class="input" value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        <option value="">Choose an image…</option>
        {images.map((i) => (
          <option key={i.sha256} value={i.sha256}>
            {i.name} ({i.format}, {i.sha256.slice(0, 12)}…)
          </option>
        ))}
      </select>
      {f.error(field)}
    </div>
  );
}
